"""Admin install/uninstall into an OpenSearch/Elasticsearch cluster, alerting, and the Flask web app.

Filled by issues 6 and 8.
"""

"""Vega-Lite specs (one source of truth) turned into saved objects for Kibana and OpenSearch Dashboards (issue 6)."""

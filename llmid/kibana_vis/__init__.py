"""kibana_vis"""

"""LLM-ID: raw logs in; templates, incidents with root causes and recovery recommendations out."""

__version__ = "0.1.0"

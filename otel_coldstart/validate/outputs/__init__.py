"""Renderings of the validation result document (``result.py``): JUnit XML, Markdown, HTML."""

"""Headless API-format runner: convert UI to API format, run in-process or on a ComfyUI server."""

"""Tests in a real browser: JupyterLab and Chromium driven by Playwright (see conftest.py and lab.py)."""

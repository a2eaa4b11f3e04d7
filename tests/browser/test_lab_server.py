"""The test server's settings: what keeps the browser tests from writing the notebooks, and shows them every cell."""

import json
import urllib.request


def _settings(server, plugin: str) -> dict:
    with urllib.request.urlopen(f"{server.url}/lab/api/settings/{plugin}", timeout=30) as r:
        return json.load(r)["settings"]


def test_autosave_is_off_and_every_cell_is_in_the_dom(lab_server):
    assert _settings(lab_server, "@jupyterlab/docmanager-extension:plugin")["autosave"] is False
    assert _settings(lab_server, "@jupyterlab/notebook-extension:tracker")["windowingMode"] == "none"

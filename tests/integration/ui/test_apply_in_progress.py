"""An apply in progress is visible where an operator looks: `status` (text and --json) and the
dashboard's overview name it, since forces and scheduled fires are refused until it ends."""

from __future__ import annotations

from funnelops.backends import open_backend
from funnelops.spec.loader import load_project
from funnelops.ui.app import create_app
from funnelops.ui.dashboard import UiSettings
from tests.helpers.ui_home import client, csrf


def test_status_and_the_overview_name_an_apply_in_progress(tiny):
    home, _gate = tiny
    assert home.cli_json("status")["applying"] is None
    holder = open_backend("local", load_project(home.project), home.home)  # another process's apply, as seen
    with holder.apply_lock():
        applying = home.cli_json("status")["applying"]
        assert applying is not None and applying["actor"] and applying["command"]
        text = home.cli("status").stdout
        assert "Apply in progress" in text and applying["command"] in text
        with client(create_app(UiSettings(project_path=home.project, home=home.home))) as c:
            page = c.get("/")
            assert page.status_code == 200 and 'id="applying"' in page.text
            forced = c.post("/api/force", json={"scheduler": "dia"}, headers=csrf(c))
            assert forced.status_code == 409, forced.text
    holder.close()
    assert home.cli_json("status")["applying"] is None

"""Chat templates on real servers (P1, T4, M1, Q1)."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pytest

from threadline.devtools.seed import DEMO_FIRM_NAME

from ..messaging.conftest import LEE
from .conftest import TEMPLATE_MANAGER, TemplateFirm, ThreadCreatedWatch, account, add_accounts

pytestmark = pytest.mark.integration

FULL = {
    "name": "Year-end documents",
    "subject": "[[account.name]]: documents for [[date.last_year]]",
    "html": (
        "<p>Dear [[contact.first_name]],</p><p>please send your [[date.last_year]] papers "
        "to [[firm.name]] by [[ date.month ]] [[date.year]].</p><p>[[sender.name]]</p>"
    ),
    "client_tasks": ["Upload the [[date.last_year]] W-2 of [[contact.full_name]]", "Sign"],
    "reminders": {"enabled": True, "days_between": 5, "max_reminders": 2},
}


def today() -> datetime:
    return datetime.now(UTC)


async def test_p1_template_crud_by_owner_and_manager(firm: TemplateFirm) -> None:
    created = await firm.new_template("owner", **FULL)
    assert created["subject"] == FULL["subject"]
    assert created["client_tasks"] == FULL["client_tasks"]
    assert created["reminders"] == FULL["reminders"]
    url = f"/v1/templates/{created['id']}"
    assert (await firm.call("assigned member", "GET", url)).json()["name"] == FULL["name"]

    changed = await firm.call(TEMPLATE_MANAGER, "PATCH", url, json={"name": "Renamed"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Renamed" and changed.json()["revision"] == 1
    assert changed.json()["html"] == created["html"]

    copy = await firm.call(TEMPLATE_MANAGER, "POST", f"{url}/duplicate")
    assert copy.status_code == 201, copy.text
    assert copy.json()["name"] == "Copy of Renamed" and copy.json()["id"] != created["id"]
    listed = (await firm.call("assigned member", "GET", "/v1/templates")).json()
    assert [t["id"] for t in listed["templates"]] == [created["id"], copy.json()["id"]]

    assert (await firm.call("admin", "DELETE", url)).status_code == 204
    assert (await firm.call("owner", "GET", url)).status_code == 404
    assert (await firm.call("owner", "DELETE", url)).status_code == 404


async def test_p1_only_managers_change_templates_and_clients_never_see_them(
    firm: TemplateFirm,
) -> None:
    template = await firm.new_template()
    url = f"/v1/templates/{template['id']}"
    body = {"name": "n", "subject": "s", "html": "h"}
    for who in ("assigned member", "member with view-all"):
        assert (await firm.call(who, "POST", "/v1/templates", json=body)).status_code == 403
        assert (await firm.call(who, "PATCH", url, json={"name": "x"})).status_code == 403
        assert (await firm.call(who, "DELETE", url)).status_code == 403
        assert (await firm.call(who, "GET", url)).status_code == 200
    for who in ("client", "other client"):
        for method, path in (("GET", "/v1/templates"), ("GET", url), ("DELETE", url)):
            response = await firm.call(who, method, path)
            assert response.status_code == 403, (who, method, path)
            assert template["subject"] not in response.text
    assert (await firm.call("other firm", "GET", url)).status_code == 404
    assert (await firm.call("other firm", "GET", "/v1/templates")).json()["templates"] == []
    assert (await firm.call("owner", "GET", url)).json()["name"] == template["name"]


async def test_p1_unknown_shortcodes_are_refused_naming_them(firm: TemplateFirm) -> None:
    response = await firm.call(
        "owner",
        "POST",
        "/v1/templates",
        json={
            "name": "bad",
            "subject": "[[account.name]] [[client.nickname]]",
            "html": "<p>[[contact.first_name]] [[firm.phone]] [[<b>x</b>]]</p>",
            "client_tasks": ["[[client.nickname]]"],
        },
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["unknown_shortcodes"] == ["client.nickname", "firm.phone", "<b>x</b>"]
    assert "[[client.nickname]]" in problem["detail"] and "[[firm.phone]]" in problem["detail"]
    template = await firm.new_template()
    patched = await firm.call(
        "owner", "PATCH", f"/v1/templates/{template['id']}", json={"subject": "[[nope]]"}
    )
    assert patched.status_code == 422 and patched.json()["unknown_shortcodes"] == ["nope"]


async def test_p1_shortcode_list_is_served(firm: TemplateFirm) -> None:
    listed = (await firm.call("assigned member", "GET", "/v1/templates/shortcodes")).json()
    tokens = {code["token"] for code in listed["shortcodes"]}
    assert {
        "[[account.name]]",
        "[[contact.first_name]]",
        "[[contact.full_name]]",
        "[[firm.name]]",
        "[[sender.name]]",
        "[[date.today]]",
        "[[date.year]]",
        "[[date.last_year]]",
        "[[date.month]]",
    } <= tokens
    assert (await firm.call("client", "GET", "/v1/templates/shortcodes")).status_code == 403


async def test_p1_m1_q1_thread_from_template_is_rendered_per_addressed_contact(
    firm: TemplateFirm,
) -> None:
    template = await firm.new_template(**FULL)
    now = today()
    year, last_year, month = now.year, now.year - 1, now.strftime("%B")
    bootstrap = firm.app.state.runtime.settings.kafka_bootstrap_servers
    async with ThreadCreatedWatch(bootstrap) as watch:
        both = await firm.from_template(template["id"])
        ben = await firm.from_template(template["id"], to_contact_ids=["ct_ben_lee"])
        override = await firm.from_template(
            template["id"],
            subject="Only for [[contact.first_name]]",
            reminders={"enabled": False},
        )
        events = await watch.events({both["id"], ben["id"], override["id"]})

    assert both["subject"] == f"Lee Family: documents for {last_year}"
    messages = await firm.call("client", "GET", f"/v1/threads/{both['id']}/messages")
    first = messages.json()["messages"][0]
    assert first["text"] == (
        f"Dear Ann, Ben,\nplease send your {last_year} papers to {DEMO_FIRM_NAME} by "
        f"{month} {year}.\nMia Chen"
    )
    assert html.escape(DEMO_FIRM_NAME) in first["html"] and "[[" not in first["html"]
    created = events[both["id"]].data
    assert created.template_id == template["id"]
    assert [task.text for task in created.client_tasks] == [
        f"Upload the {last_year} W-2 of Ann Lee, Ben Lee",
        "Sign",
    ]
    assert created.reminders.model_dump() == FULL["reminders"]

    ben_first = await firm.call("owner", "GET", f"/v1/threads/{ben['id']}/messages")
    assert ben_first.json()["messages"][0]["text"].startswith("Dear Ben,\n")
    assert events[ben["id"]].data.client_tasks[0].text.endswith("W-2 of Ben Lee")

    assert override["subject"] == "Only for Ann, Ben"
    assert events[override["id"]].data.reminders.enabled is False
    assert events[override["id"]].data.reminders.days_between == 3


async def test_p1_preview_shows_exactly_what_the_thread_gets(firm: TemplateFirm) -> None:
    template = await firm.new_template("owner", **FULL)
    preview = await firm.call(
        "assigned member",
        "POST",
        f"/v1/templates/{template['id']}/preview",
        params={"account_id": LEE},
    )
    assert preview.status_code == 200, preview.text
    bootstrap = firm.app.state.runtime.settings.kafka_bootstrap_servers
    async with ThreadCreatedWatch(bootstrap) as watch:
        thread = await firm.from_template(template["id"])
        event = (await watch.events({thread["id"]}))[thread["id"]].data
    shown = preview.json()
    message = (await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/messages")).json()
    assert shown["subject"] == thread["subject"]
    assert shown["html"] == message["messages"][0]["html"]
    assert shown["text"] == message["messages"][0]["text"]
    assert shown["client_tasks"] == [task.text for task in event.client_tasks]
    assert shown["to_contact_ids"] == thread["to_contact_ids"]
    hidden = await firm.call(
        "unassigned member",
        "POST",
        f"/v1/templates/{template['id']}/preview",
        params={"account_id": LEE},
    )
    assert hidden.status_code == 404


async def test_p1_html_in_names_is_escaped_never_markup(firm: TemplateFirm) -> None:
    evil = "<b>Bold</b> & <img src=x onerror=alert(1)>"
    await add_accounts(
        firm, [account("acc_evil", f"{evil} Co", (f"<script>x()</script>Eve {evil}", True))]
    )
    template = await firm.new_template(
        subject="For [[account.name]]",
        html="<p>Hi [[contact.full_name]] of [[account.name]]</p>",
        client_tasks=["Ask [[contact.first_name]]"],
    )
    thread = await firm.from_template(template["id"], "owner", account_id="acc_evil")
    first = (await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/messages")).json()
    body = first["messages"][0]["html"]
    assert "<b>" not in body and "<img" not in body and "<script" not in body
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in body
    # Plain-text fields keep the name as text (displayed as text by clients).
    assert thread["subject"] == f"For {evil} Co"
    assert first["messages"][0]["text"] == f"Hi <script>x()</script>Eve {evil} of {evil} Co"


async def test_p1_deleting_a_template_leaves_its_threads_alone(firm: TemplateFirm) -> None:
    template = await firm.new_template(**FULL)
    thread = await firm.from_template(template["id"])
    before = (await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/messages")).json()
    await firm.call("owner", "PATCH", f"/v1/templates/{template['id']}", json={"html": "new"})
    assert (
        await firm.call("owner", "DELETE", f"/v1/templates/{template['id']}")
    ).status_code == 204
    after = (await firm.call("owner", "GET", f"/v1/threads/{thread['id']}/messages")).json()
    assert after == before
    shown = (await firm.call("owner", "GET", f"/v1/threads/{thread['id']}")).json()
    assert shown["subject"] == thread["subject"]
    gone = await firm.call(
        "owner", "POST", "/v1/threads", json={"account_id": LEE, "template_id": template["id"]}
    )
    assert gone.status_code == 404


async def test_p1_replies_never_take_a_template_and_clients_cannot_use_one(
    firm: TemplateFirm,
) -> None:
    template = await firm.new_template(**FULL)
    thread = await firm.new_thread()
    reply = await firm.post("assigned member", thread["id"], html="hi", template_id=template["id"])
    assert reply.status_code == 422
    client = await firm.call(
        "client", "POST", "/v1/threads", json={"account_id": LEE, "template_id": template["id"]}
    )
    assert client.status_code == 403
    assert "Dear" not in client.text
    neither = await firm.call("owner", "POST", "/v1/threads", json={"account_id": LEE})
    assert neither.status_code == 422

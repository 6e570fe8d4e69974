"""ServiceNow's own Python clients, unmodified, against ebond's Table-API facade.

Run by tests/api/table_clients.rs against a gateway it started over HTTPS with a test
certificate (PySNC refuses plain HTTP); the CA is in REQUESTS_CA_BUNDLE. Settings come from the
environment: EBOND_URL (https://127.0.0.1:PORT), EBOND_USER / EBOND_PASSWORD (a facade login),
EBOND_CLIENT_ID / EBOND_CLIENT_SECRET (the partner's OAuth client). Prints one line per check
and exits non-zero on the first failure.
"""

import datetime
import os
import sys

import pysnc
import pysnow
import requests

URL = os.environ["EBOND_URL"]
HOST = URL.split("://", 1)[1]
USER, PASSWORD = os.environ["EBOND_USER"], os.environ["EBOND_PASSWORD"]
CLIENT_ID, CLIENT_SECRET = os.environ["EBOND_CLIENT_ID"], os.environ["EBOND_CLIENT_SECRET"]


def check(cond, what):
    if not cond:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok   {what}", flush=True)


def pysnc_run(client, tag):
    gr = client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = f"{tag} insert"
    gr.impact = "2"
    gr.urgency = "2"
    sys_id = gr.insert()
    check(sys_id and len(str(sys_id)) == 32, f"{tag}: insert gives a sys_id ({sys_id})")

    one = client.GlideRecord("incident")
    check(one.get(str(sys_id)), f"{tag}: get by sys_id")
    check(one.get_value("short_description") == f"{tag} insert", f"{tag}: the record reads back")
    check(one.get_value("priority") == "3", f"{tag}: priority derived from impact x urgency")
    check(one.get_display_value("state") == "New", f"{tag}: display value of state")
    check(one.get_value("number").startswith("EB"), f"{tag}: number from ebond ({one.get_value('number')})")

    one.state = "2"
    one.work_notes = "picked up by pysnc"
    check(one.update(), f"{tag}: update")
    again = client.GlideRecord("incident")
    again.get(str(sys_id))
    check(again.get_value("state") == "2" and again.get_value("sys_mod_count") == "1", f"{tag}: update is stored")

    for i in range(7):
        r = client.GlideRecord("incident")
        r.initialize()
        r.short_description = f"{tag} page {i}"
        r.insert()
    pages = client.GlideRecord("incident", batch_size=3)
    pages.add_query("short_description", "STARTSWITH", f"{tag} page")
    pages.fields = ["sys_id", "short_description"]
    pages.query()
    check(pages.get_row_count() == 7, f"{tag}: X-Total-Count read as the row count ({pages.get_row_count()})")
    seen = [r.get_value("short_description") for r in pages]
    check(sorted(seen) == sorted(f"{tag} page {i}" for i in range(7)), f"{tag}: encoded query over three pages")
    fields = client.GlideRecord("incident", batch_size=3)
    fields.add_query("short_description", "STARTSWITH", f"{tag} page")
    fields.fields = "sys_id,short_description"
    fields.query()
    fields.next()
    check(fields.get_value("state") is None or fields.get_value("state") == "", f"{tag}: field selection leaves other fields out")

    many = client.GlideRecord("incident")
    many.add_query("short_description", "STARTSWITH", f"{tag} page")
    many.query()
    for r in many:
        r.category = f"{tag}-batch"
    check(many.update_multiple(), f"{tag}: update_multiple (batch API)")
    after = client.GlideRecord("incident")
    after.add_query("category", f"{tag}-batch")
    after.query()
    check(after.get_row_count() == 7, f"{tag}: every record of the batch updated ({after.get_row_count()})")

    gone = client.GlideRecord("incident")
    gone.get(str(sys_id))
    check(gone.delete(), f"{tag}: delete (cancels)")
    canceled = client.GlideRecord("incident")
    canceled.get(str(sys_id))
    check(canceled.get_value("state") == "8", f"{tag}: the deleted record is canceled")


def main():
    # PySNC, HTTP Basic.
    pysnc_run(pysnc.ServiceNowClient(URL, (USER, PASSWORD)), "pysnc-basic")
    # PySNC, the OAuth password grant.
    flow = pysnc.ServiceNowPasswordGrantFlow(USER, PASSWORD, CLIENT_ID, CLIENT_SECRET)
    pysnc_run(pysnc.ServiceNowClient(URL, flow), "pysnc-oauth")

    # pysnow, HTTP Basic through a session.
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    pysnow_run(pysnow.Client(host=HOST, session=session, use_ssl=True), "pysnow-basic")
    # pysnow, the OAuth password grant.
    oauth = pysnow.OAuthClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, host=HOST, use_ssl=True)
    oauth.set_token(oauth.generate_token(USER, PASSWORD))
    pysnow_run(oauth, "pysnow-oauth")
    print("all client checks passed", flush=True)


def pysnow_run(client, tag):
    incident = client.resource(api_path="/table/incident")
    created = incident.create(payload={"short_description": f"{tag} create", "impact": "1", "urgency": "2"})
    rec = created.one()
    check(len(rec["sys_id"]) == 32 and rec["priority"] == "2", f"{tag}: create")
    for i in range(4):
        incident.create(payload={"short_description": f"{tag} list {i}"})
    qb = pysnow.QueryBuilder().field("short_description").starts_with(f"{tag} list").AND().field("sys_created_on").greater_than_or_equal(datetime.datetime(2000, 1, 1))
    listed = list(incident.get(query=qb).all())
    check(len(listed) == 4, f"{tag}: query builder query ({len(listed)})")
    by_dict = incident.get(query={"number": rec["number"]}).one()
    check(by_dict["sys_id"] == rec["sys_id"], f"{tag}: query by dict")
    incident.parameters.display_value = True
    shown = incident.get(query={"number": rec["number"]}).one()
    check(shown["priority"] == "2 - High", f"{tag}: display values ({shown['priority']})")
    incident.parameters.display_value = False
    narrow = incident.get(query={"number": rec["number"]}, fields=["sys_id", "state"]).one()
    check(set(narrow) == {"sys_id", "state"}, f"{tag}: field selection ({sorted(narrow)})")
    updated = incident.update(query={"number": rec["number"]}, payload={"state": "2", "comments": "from pysnow"})
    check(updated["state"] == "2", f"{tag}: update (GET then PUT)")
    deleted = incident.delete(query={"number": rec["number"]})
    check(deleted.get("status") == "record deleted", f"{tag}: delete")
    check(incident.get(query={"number": rec["number"]}).one()["state"] == "8", f"{tag}: the deleted record is canceled")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The Table-API facade's list against the v1 list, on 1,000,000 tickets (SQLite).

    cargo build --release && python3 benches/table_api.py [--binary target/release/ebond] [--tickets 1000000]
        [--db postgres://postgres@127.0.0.1:5432/postgres]

Seeds a fresh SQLite database (or, with --db, a fresh PostgreSQL database beside the one named,
through psql) with TICKETS incidents shared with the `initech` example partner
(changed one second apart), starts `ebond serve` on it, and times the same question both ways:
the 1,000 most recently changed tickets, as `GET /api/now/table/incident?sysparm_query=
sys_updated_on>=T^ORDERBYsys_updated_on&sysparm_limit=1000` (HTTP Basic, X-Total-Count
counted) and as `GET /api/ebond/v1/tickets?updated_since=T&limit=1000` (bearer token). Also the
facade's first page of 1,000 ordered by sys_id, whose count covers every ticket. Prints the
median and p90 of 20 requests each. Standard library only.
"""

import argparse, base64, json, os, secrets, sqlite3, statistics, subprocess, sys, tempfile, time
import urllib.request, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--binary", default="target/release/ebond")
ap.add_argument("--tickets", type=int, default=1_000_000)
ap.add_argument("--runs", type=int, default=20)
ap.add_argument("--db", default="sqlite", help="sqlite, or a postgres:// URL to create the bench database beside")
args = ap.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tmp = tempfile.mkdtemp(prefix="ebond-table-bench-")
env = dict(os.environ, EBOND_DATA_DIR=tmp, EBOND_CONTRACTS_DIR=os.path.join(root, "contracts"),
           EBOND_AUTH_PBKDF2_ITERATIONS="1000", EBOND_LIMITS_MAX_PAGE_SIZE="1000", EBOND_BIND="127.0.0.1:18443",
           EBOND_OUTBOX_IN_PROCESS="false", EBOND_SYNC_SCHEDULE="false", EBOND_LOG_FORMAT="json", RUST_LOG="warn")
binary = os.path.join(root, args.binary)
n = args.tickets
base = 1_767_225_600_000  # 2026-01-01T00:00:00Z
pg = args.db.startswith("postgres")
if pg:
    admin = args.db
    bench_db = f"ebond_table_bench_{os.getpid()}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {bench_db}"], check=True)
    env["EBOND_DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + bench_db
subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
t0 = time.time()
if pg:
    subprocess.run(["psql", env["EBOND_DATABASE_URL"], "-q", "-v", "ON_ERROR_STOP=1", "-c", f"""
        INSERT INTO tickets (number, kind, short_description, state, attributes, version, created_at, updated_at,
                             created_by, updated_by, field_stamps, open_conflicts)
        SELECT 'EB' || lpad(i::text, 7, '0'), 'incident', 'ticket ' || i, 'new', '{{}}', 1, {base} + i * 1000,
               {base} + i * 1000, 'initech', 'initech', '{{}}', 0 FROM generate_series(1, {n}) AS i;
        INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at, seen_version)
        SELECT 'initech', NULL, id, true, created_at, updated_at, 1 FROM tickets;
        UPDATE counters SET value = {n} WHERE name = 'ticket_number';""", "-c", "VACUUM ANALYZE"], check=True)
if not pg:
    db = sqlite3.connect(os.path.join(tmp, "ebond.db"))
    db.execute("PRAGMA synchronous = OFF")
    rows = ((f"EB{i:07d}", "incident", f"ticket {i}", "new", "{}", 1, base + i * 1000, base + i * 1000, "initech",
         "initech", "{}", 0, secrets.token_hex(16)) for i in range(1, n + 1))
    db.executemany("INSERT INTO tickets (number, kind, short_description, state, attributes, version, created_at, "
                   "updated_at, created_by, updated_by, field_stamps, open_conflicts, sys_id) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.execute("INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at, seen_version) "
               "SELECT 'initech', NULL, id, 1, created_at, updated_at, 1 FROM tickets")
    db.execute("UPDATE counters SET value = ? WHERE name = 'ticket_number'", (n,))
    db.commit()
    db.execute("ANALYZE")
    db.close()
print(f"seeded {n} tickets on {'PostgreSQL' if pg else 'SQLite'} in {time.time() - t0:.1f}s", flush=True)

def issue(*extra):
    out = subprocess.run([binary, "partner", "credentials", "issue", "initech", "--json", *extra], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)

login, client = issue("--table-api"), issue()
server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    url = "http://127.0.0.1:18443"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    form = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()
    req = urllib.request.Request(url + "/api/ebond/v1/oauth/token", data=form)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode())
    token = json.load(urllib.request.urlopen(req))["access_token"]
    basic = "Basic " + base64.b64encode(f"{login['client_id']}:{login['client_secret']}".encode()).decode()

    since_ms = base + (n - 999) * 1000
    since_sn = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since_ms / 1000))
    since_v1 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since_ms / 1000))
    cases = [
        ("facade: 1,000 newest (query, count)", url + "/api/now/table/incident?" + urllib.parse.urlencode(
            {"sysparm_query": f"sys_updated_on>={since_sn}^ORDERBYsys_updated_on", "sysparm_limit": "1000"}), basic),
        ("facade: 1,000 newest (query, sysparm_no_count)", url + "/api/now/table/incident?" + urllib.parse.urlencode(
            {"sysparm_query": f"sys_updated_on>={since_sn}^ORDERBYsys_updated_on", "sysparm_limit": "1000",
             "sysparm_no_count": "true"}), basic),
        ("v1 list: 1,000 newest", url + "/api/ebond/v1/tickets?" + urllib.parse.urlencode(
            {"updated_since": since_v1, "limit": "1000"}), "Bearer " + token),
        (f"facade: first 1,000 by sys_id, no count", url + "/api/now/table/incident?" + urllib.parse.urlencode(
            {"sysparm_query": "ORDERBYsys_id", "sysparm_limit": "1000", "sysparm_no_count": "true"}), basic),
        (f"facade: first 1,000 by sys_id (count of {n})", url + "/api/now/table/incident?" + urllib.parse.urlencode(
            {"sysparm_query": "ORDERBYsys_id", "sysparm_limit": "1000"}), basic),
    ]
    for name, u, auth in cases:
        times, got = [], None
        for _ in range(args.runs):
            r = urllib.request.Request(u)
            r.add_header("Authorization", auth)
            start = time.perf_counter()
            raw = urllib.request.urlopen(r, timeout=120).read()
            # The answer's time, not the client's parsing of it.
            times.append((time.perf_counter() - start) * 1000)
            body = json.loads(raw)
            got = len(body.get("result", body.get("items", [])))
        times.sort()
        print(f"{name:48} {got:5} records {len(raw) // 1024:5} KiB  median {statistics.median(times):7.1f} ms  p90 {times[int(len(times) * 0.9) - 1]:7.1f} ms", flush=True)
finally:
    server.terminate()
    server.wait()
    if pg:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {bench_db} WITH (FORCE)"])

"""Redaction before export: a corpus of tricky inputs as data, pseudonym consistency, objects,
custom patterns, bad patterns, and idempotency as a property."""

from __future__ import annotations

import json
import re
from collections import namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rca.errors import BadInput
from rca.redact import DEFAULT_KINDS, Redactor, check_patterns

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTQ4MjEzIiwibmFtZSI6IkFsaWNlIn0."
       "Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkxMjM0NTY")
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\nZm9vYmFyYmF6cXV4MTIzNDU2Nzg5==\n-----END RSA PRIVATE KEY-----"
OPENAI = "sk-proj-Tq3vN8xLw2Pb7RtY5mKdHj6Gf4Sa1Ze9Xc"
ANTHROPIC = "sk-ant-api03-Hq7vK2xLm9Pb3RtW5nJdBc8Gf4Sa1Ze6Xu-AbCd"
GITHUB = "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sXy"
GITHUB_PAT = "github_pat_11ABCDEFG0abcdefghij_KLMNOPqrstuvwxyz0123456789"
SLACK = "xoxb-1234567890123-2345678901234-AbCdEfGhIjKlMnOpQrStUvWx"
AWS_ID = "AKIAQ3EXAMPLEZ7Y4WKD"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
GOOGLE = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
RCA = "rca_0a1b2c3d_Vq2Lx8Nw4Rb6Ty1Mk9Hd3Gf7Sa5Ze0Xc-_Jp"

PROMPT = ("ALERT VLLMHighTTFT firing since 16:38Z model_name=llama-3-8b instance=10.0.0.5:8000\n"
          "ANOMALIES (5m, vs 1h baseline):\n- vllm:time_to_first_token_seconds p90 0.4s -> 6.8s\n"
          "- vllm:kv_cache_usage_perc 0.62 -> 0.99\n- DCGM_FI_DEV_GPU_UTIL 97% (flat), DCGM_FI_DEV_XID_ERRORS 0\n"
          "TRACES: 41/50 slow spans have gen_ai.usage.input_tokens > 24000, 45.2 tokens/s, KV cache usage 0.99")
NOT_SECRETS = ["vllm:time_to_first_token_seconds", "DCGM_FI_DEV_XID_ERRORS", "service:checkout",
               "gpu:gpu-node-2/3", "model:llama-3-8b", "pod:vllm-0", "16:38:00", "2026-11-21T16:30:00Z",
               "16:38Z", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "gen_ai.usage.input_tokens > 24000",
               "tokens/s", "KV cache usage 0.99", "512 MiB", "version 1.2.3.4"]

# (name, input, secrets that must not survive, strings that must survive)
CORPUS: list[tuple[str, str, list[str], list[str]]] = [
    ("json-key", '{"api_key": "Zq8vN3xLw2Pb7RtY", "model": "llama-3-8b", "max_tokens": 512}',
     ["Zq8vN3xLw2Pb7RtY"], ['"model": "llama-3-8b"', '"max_tokens": 512', '"api_key": ']),
    ("json-in-json", json.dumps({"name": "query", "arguments": json.dumps(
        {"password": "hunter2-Qx9z", "q": "rate(vllm:num_preemptions_total[5m])", "client_secret": "Cs-8812-zzq"})}),
     ["hunter2-Qx9z", "Cs-8812-zzq"], ["rate(vllm:num_preemptions_total[5m])", '\\"password\\": \\"']),
    ("double-encoded", json.dumps(json.dumps({"token": "Tk9-zz81-Lmq4", "entity": "service:checkout",
                                              "owner": "alice@corp.example.com"})),
     ["Tk9-zz81-Lmq4", "alice@corp.example.com"], ["service:checkout", "entity"]),
    ("ipv6-forms", "peers 2001:db8::1, ::1, fe80::1%eth0, ::ffff:10.0.0.1 and [2001:db8:0:0:8:800:200c:417a]:8080 "
     "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 at 16:38:00 mac 00:1a:2b:3c:4d:5e std::vector span 00f067aa0ba902b7",
     ["2001:db8::1", "fe80::1", "::ffff:10.0.0.1", "10.0.0.1", "2001:db8:0:0:8:800:200c:417a",
      "2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
     ["]:8080", "16:38:00", "00:1a:2b:3c:4d:5e", "std::vector", "00f067aa0ba902b7", "peers "]),
    ("not-ipv6", "Rust dead::beef, cafe::, a::b and 12:30:45 with 1:2:3 ratios; ns::Type",
     [], ["dead::beef", "cafe::", "a::b", "12:30:45", "1:2:3", "ns::Type"]),
    ("escaped-newlines", json.dumps({"log": "boot\n10.0.0.7 up\nalice@example.com\nuser_id=48213\tpassword=Pw-8812"
                                        "\nAuthorization: Bearer Zb-81-Qx3mL\nhttps://svc:Pw-99x@h.internal\n"}),
     ["10.0.0.7", "alice@example.com", "48213", "Pw-8812", "Zb-81-Qx3mL", "Pw-99x"],
     ['{"log": "boot\\n<ip:', "\\n<email:", "\\tpassword=",
      "\\nAuthorization: Bearer <secret>\\nhttps://<url-credentials>@h.internal\\n"]),
    ("ipv6-loopback", "listening on ::1 port 8000", ["::1"], ["port 8000", "listening on "]),
    ("bearer-next-line", f"POST /v1/chat HTTP/1.1\nAuthorization: Bearer\n  {JWT}\nHost: api.internal",
     [JWT], ["Authorization: Bearer", "Host: api.internal"]),
    ("bearer-missing", "GET / HTTP/1.1\nAuthorization: Bearer\nContent-Type: application/json\nX-Trace: 00f067aa0ba902b7",
     [], ["Authorization: Bearer\nContent-Type: application/json", "X-Trace: 00f067aa0ba902b7"]),
    ("curl", f"curl -sS -u admin:Sup3rS3cretPw -H 'Authorization: Bearer {OPENAI}' \\\n"
     f"  -H \"X-Api-Key: Xk-99-zQvLm\" 'https://api.example.com/v1/models?token=Qtok-1234-zz&limit=5'",
     [OPENAI, "Sup3rS3cretPw", "Xk-99-zQvLm", "Qtok-1234-zz"], ["https://api.example.com/v1/models", "limit=5"]),
    ("curl-continued", "curl -H \"Authorization: Bearer \\\n    Zq8vN3xLw2Pb7RtYmK\" https://x.example.org",
     ["Zq8vN3xLw2Pb7RtYmK"], ["https://x.example.org"]),
    ("pem", f"key.pem:\n{PEM}\nafter the key", [PEM_BODY, "Zm9vYmFyYmF6cXV4"], ["after the key"]),
    ("pem-in-json", json.dumps({"private_key": PEM, "type": "service_account"}), [PEM_BODY], ["service_account"]),
    ("url-credentials", "DATABASE_URL=postgres://rca_app:Pg-S3cr3t-99@db.internal.example:5432/rca "
     "and redis://:R3dis-Pa55@cache-0.cache.svc:6379/0 and https://x-access-token:Gt0k3n-zz9@github.com/o/r.git",
     ["Pg-S3cr3t-99", "rca_app:", "R3dis-Pa55", "Gt0k3n-zz9"],
     ["postgres://", "@db.internal.example:5432/rca", "@cache-0.cache.svc:6379/0", "@github.com/o/r.git"]),
    ("emails", "from alice+oncall@mail.eu.example.co.uk to Bob.Smith@sub.example.org (cc ops-team@example.com).",
     ["alice+oncall@mail.eu.example.co.uk", "Bob.Smith@sub.example.org", "ops-team@example.com"], ["from ", " to "]),
    ("yaml", "database:\n  host: db.internal\n  password: correct horse battery 42\n  user: app_reader\n"
     "secrets:\n  aws_secret_access_key: " + AWS_SECRET + "\ntoken_type: Bearer\nmax_tokens: 4096\n",
     ["correct horse battery 42", AWS_SECRET, "app_reader"],
     ["host: db.internal", "token_type: Bearer", "max_tokens: 4096", "secrets:\n"]),
    ("env-file", f"export OPENAI_API_KEY={OPENAI}\nANTHROPIC_API_KEY=\"{ANTHROPIC}\"\nDB_PASSWORD=hunter2\n"
     f"AWS_ACCESS_KEY_ID={AWS_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\nLOG_LEVEL=debug\nSESSION_COOKIE=ck-8812-abq\n",
     [OPENAI, ANTHROPIC, "hunter2", AWS_ID, AWS_SECRET, "ck-8812-abq"], ["LOG_LEVEL=debug", "DB_PASSWORD="]),
    ("python-repr", "Settings(db_url='mysql://root:My5ql-pw@10.1.2.3/x', api_token='Ptok-77-Qzx', workers=4) "
     "{'password': 'p@ss-word!', 'user': 'alice', 'retries': 3}",
     ["My5ql-pw", "Ptok-77-Qzx", "p@ss-word!", "10.1.2.3", "'alice'"], ["workers=4", "'retries': 3"]),
    ("log-line", "2026-11-21T16:30:00Z ERROR auth failed user_id=48213 client=203.0.113.77 "
     f"session={JWT} trace_id=4bf92f3577b34da6a3ce929d0e0e4736 took 512 MiB",
     ["48213", "203.0.113.77", JWT], ["2026-11-21T16:30:00Z", "4bf92f3577b34da6a3ce929d0e0e4736", "512 MiB"]),
    ("known-prefixes", f"keys: {GITHUB} {GITHUB_PAT} {SLACK} {GOOGLE} {STRIPE} {HF} {RCA} and {ANTHROPIC}",
     [GITHUB, GITHUB_PAT, SLACK, GOOGLE, STRIPE, HF, RCA, ANTHROPIC], ["keys: "]),
    ("otel-attributes", 'span attrs enduser.id="u-48213-zz" userId=7781 customer_id=cus_Q9x account_id: 99012 '
     'uid=1001 http.user_agent="curl/8.0" gen_ai.usage.input_tokens=31000',
     ["u-48213-zz", "7781", "cus_Q9x", "99012", "1001"],
     ['http.user_agent="curl/8.0"', "gen_ai.usage.input_tokens=31000"]),
    ("headers", "Cookie: sid=Sess-8812-abq; theme=dark\nX-Auth-Token: Xat-771-qq\nProxy-Authorization: Basic "
     "YWRtaW46cGFzc3dvcmQ=\nAccept: application/json",
     ["Sess-8812-abq", "Xat-771-qq", "YWRtaW46cGFzc3dvcmQ="], ["Accept: application/json"]),
    ("xml", "<config><db.user>app_reader</db.user><password>Xml-Pw-9921</password><port>5432</port>"
     "<label>a-password>x</label></config>",
     ["app_reader", "Xml-Pw-9921"], ["<port>5432</port>", "<label>a-password>x</label>", "<password>"]),
    ("rejected-match-gives-back", "mysql://root:My5ql-pw@db/x api_token='Ptok-88-Qzx' auth: true </note>",
     ["My5ql-pw", "Ptok-88-Qzx"], ["auth: true </note>", "@db/x"]),
    ("telemetry-prompt", PROMPT + " root cause vllm/llama-3-8b@10.0.0.5", ["10.0.0.5"],
     ["vllm:time_to_first_token_seconds p90 0.4s -> 6.8s", "vllm:kv_cache_usage_perc 0.62 -> 0.99",
      "DCGM_FI_DEV_GPU_UTIL 97% (flat), DCGM_FI_DEV_XID_ERRORS 0", "gen_ai.usage.input_tokens > 24000",
      "45.2 tokens/s", "KV cache usage 0.99", "since 16:38Z", "model_name=llama-3-8b", ":8000",
      "vllm/llama-3-8b@"]),
    ("not-secrets", " ".join(NOT_SECRETS) + " token tokens the auth: true\nsession:abc v1.2.3.4",
     [], [*NOT_SECRETS, "auth: true", "session:abc", "v1.2.3.4", " token tokens "]),
    ("counts-not-secrets", '{"usage": {"token": 512, "session": 3}} input_token=24000 session: 12 active',
     [], ['"token": 512', '"session": 3', "input_token=24000", "session: 12 active"]),
]


def _survives(secret: str, out: str) -> list[str]:
    """Pieces of ``secret`` still in ``out``: every 6-char window, or the whole token when shorter."""
    if len(secret) < 6:
        return [secret] if re.search(rf"(?<![\w.]){re.escape(secret)}(?![\w.])", out) else []
    return [secret[i:i + 6] for i in range(len(secret) - 5) if secret[i:i + 6] in out]


@pytest.mark.parametrize(("name", "text", "secrets", "keep"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(name, text, secrets, keep):
    out = Redactor().redact(text)
    for s in secrets:
        assert not _survives(s, out), f"{name}: pieces of {s!r} survive in {out!r}"
    for k in keep:
        assert k in out, f"{name}: {k!r} was destroyed: {out!r}"
    assert Redactor().redact(out) == out


def test_json_stays_json():
    for name, text, _, _ in CORPUS:
        try:
            before = json.loads(text)
        except ValueError:
            continue
        after = json.loads(Redactor().redact(text))  # escapes (\n, \") are never cut
        assert type(after) is type(before), name


def test_custom_patterns_never_cut_placeholders():
    r = Redactor(patterns=[r"[0-9]{2,}", r"[a-f]{3}"])
    once = r.redact("10.0.0.1 id 4412 alice@example.com fe80::1 password=hunter22")
    assert "4412" not in once and "hunter22" not in once and "alice" not in once
    assert r.redact(once) == once
    assert all(p.count("<") == p.count(">") == 1 for p in re.findall(r"<[^<>]*>", once))


def test_corpus_findings_name_the_kinds():
    r = Redactor()
    kinds = {k for _, text, _, _ in CORPUS for k, _ in r.findings(text)}
    assert kinds == set(DEFAULT_KINDS)
    got = r.findings(f"Authorization: Bearer {OPENAI} from 10.0.0.1 by bob@example.com")
    assert got == [("auth", OPENAI), ("email", "bob@example.com"), ("ipv4", "10.0.0.1")]
    assert r.findings("KV cache usage 0.99 at 16:38:00") == []


def test_default_kinds_order():
    assert DEFAULT_KINDS[0] == "private_key"
    # URLs lose their credentials before the email rule could read "pass@host" as an address;
    # IPv6 runs before IPv4 so ::ffff:10.0.0.1 is one address
    assert DEFAULT_KINDS.index("url_credentials") < DEFAULT_KINDS.index("email")
    assert DEFAULT_KINDS.index("ipv6") < DEFAULT_KINDS.index("ipv4")
    assert DEFAULT_KINDS.index("email") < DEFAULT_KINDS.index("user_id")


def test_pseudonyms_are_consistent_and_keyed_by_salt():
    r = Redactor(salt="export-42")
    prompt = r.redact("ALERT on instance=10.0.0.5:8000 (node:10.0.0.5), peer 10.0.0.6")
    completion = r.redact('{"component": "vllm/llama-3-8b@10.0.0.5"}')
    ips = re.findall(r"<ip:[0-9a-f]{8}>", prompt)
    assert len(ips) == 3 and ips[0] == ips[1] != ips[2]
    assert ips[0] in completion
    # another redactor with the same salt agrees; a different salt does not
    assert ips[0] in Redactor(salt="export-42").redact("10.0.0.5")
    assert ips[0] not in Redactor(salt="other").redact("10.0.0.5")
    # one address, several spellings: one pseudonym; a mapped IPv4 is its IPv4
    six = {Redactor().redact(a) for a in ("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:DB8::1")}
    assert len(six) == 1
    assert Redactor().redact("::ffff:10.0.0.1") == Redactor().redact("10.0.0.1")
    # emails (case-insensitively) and users too
    a, b, c = Redactor().redact("Alice@Example.com alice@example.com bob@example.com").split()
    assert a == b != c and c.startswith("<email:")
    u = Redactor().redact('user_id=48213 {"userId": "48213"} user_id=48214')
    assert len(set(re.findall(r"<user:[0-9a-f]{8}>", u))) == 2


def test_secrets_are_not_hashed():
    out = Redactor().redact(f"password=hunter2 token={GITHUB} other={GITHUB}")
    assert out == "password=<secret> token=<secret> other=<secret>"


def test_redact_obj_nested_and_key_context():
    Pt = namedtuple("Pt", "host port")
    obj = {
        "messages": [{"role": "user", "content": "ALERT at 10.0.0.5 token=Tk-8812-zzq"},
                     {"role": "assistant", "content": '{"component": "pod@10.0.0.5"}'}],
        "headers": {"Authorization": "Bearer Zq8vN3xLw2Pb7RtY", "Accept": "application/json"},
        "db": {"password": "hunter2", "port": 5432, "ssl": True, "timeout": None, "ratio": 0.5},
        "user_id": 48213,
        "enduser.id": "u-48213",
        "env": [{"name": "DB_PASSWORD", "value": "Pw-0091-zz"}, {"name": "LOG_LEVEL", "value": "debug"}],
        "attributes": [{"key": "enduser.id", "value": {"stringValue": "u-777"}}],
        "10.0.0.5": ("alice@example.com", Pt("10.0.0.9", 80)),
        f"cache[{OPENAI}]": 1,
        "max_tokens": 512,
        "credentials": {"username": "bob-the-op", "password": "Cr-771-zq", "provider": "oidc", "ttl_s": 300},
    }
    r = Redactor()
    out = r.redact_obj(obj)
    text = json.dumps(out)
    for s in ("10.0.0.5", "Tk-8812-zzq", "Zq8vN3xLw2Pb7RtY", "hunter2", "48213", "Pw-0091-zz", "u-777",
              "alice@example.com", "10.0.0.9", OPENAI, "bob-the-op", "Cr-771-zq"):
        assert not _survives(s, text), s
    assert out["headers"] == {"Authorization": "<secret>", "Accept": "application/json"}
    assert out["db"] == {"password": "<secret>", "port": 5432, "ssl": True, "timeout": None, "ratio": 0.5}
    assert out["user_id"].startswith("<user:") and out["max_tokens"] == 512
    assert out["env"][1] == {"name": "LOG_LEVEL", "value": "debug"}
    assert out["env"][0]["value"] == "<secret>" and out["attributes"][0]["value"]["stringValue"].startswith("<user:")
    cred = out["credentials"]  # a mapping under a secret key: its own keys decide
    assert cred["password"] == "<secret>" and cred["username"].startswith("<user:")
    assert cred["provider"] == "oidc" and cred["ttl_s"] == 300
    ip = r.redact("10.0.0.5")
    assert ip in out and ip in out["messages"][1]["content"] and ip in out["messages"][0]["content"]
    email, pt = out[ip]
    assert isinstance(out[ip], tuple) and isinstance(pt, Pt) and pt.port == 80 and email.startswith("<email:")
    assert "cache[<secret>]" in out
    assert obj["db"]["password"] == "hunter2"  # input untouched
    assert r.redact_obj(out) == out
    for scalar in (3, 2.5, None, True, b"10.0.0.5"):
        assert r.redact_obj(scalar) == scalar


def test_redact_obj_keeps_colliding_keys():
    out = Redactor().redact_obj({"password=a1b2c3": 1, "password=z9y8x7": 2})
    assert sorted(out.values()) == [1, 2] and len(out) == 2


def test_custom_patterns_first_and_consistent():
    r = Redactor(patterns={"tenant": r"tenant-[0-9]{3,}", "ticket": r"INC-(?P<value>\d+)"})
    out = r.redact("tenant-4412 opened INC-9917 about tenant-4412 and tenant-5000 at 10.0.0.1")
    t = re.findall(r"<tenant:[0-9a-f]{8}>", out)
    assert len(t) == 3 and t[0] == t[1] != t[2]
    assert re.search(r"INC-<ticket:[0-9a-f]{8}>", out) and "9917" not in out and "<ip:" in out
    assert r.findings("tenant-4412")[0] == ("tenant", "tenant-4412")
    assert r.redact(out) == out
    lst = Redactor(patterns=[r"acme-[a-z]+"]).redact("host acme-prod")
    assert re.fullmatch(r"host <custom:[0-9a-f]{8}>", lst)


def test_keep_literals():
    r = Redactor(keep=["10.0.0.1", "support@example.com", "api.example.com"])
    out = r.redact("10.0.0.1 10.0.0.2 support@example.com bob@example.com https://u:pw-771z@api.example.com/x")
    assert "10.0.0.1 " in out and "10.0.0.2" not in out
    assert "support@example.com" in out and "bob@" not in out
    assert "pw-771z" not in out and "@api.example.com/x" in out


@pytest.mark.parametrize("bad", [{"ticket": "INC-(\\d+"}, ["ok-[0-9]+", "[unclosed"], {"everything": "a*"},
                                 {"typed": 42}])
def test_bad_patterns_raise_bad_input_naming_them(bad):
    with pytest.raises(BadInput) as e:
        check_patterns(bad)
    assert e.value.field == "redact_patterns" and e.value.fix
    name, src = next((k, v) for k, v in (bad.items() if isinstance(bad, dict) else enumerate(bad))
                     if not (isinstance(v, str) and v == "ok-[0-9]+"))
    assert (str(name) if isinstance(bad, dict) else src) in e.value.message
    # the constructor only stores; the error comes on first use
    r = Redactor(patterns=bad)
    assert r.patterns is bad
    with pytest.raises(BadInput):
        r.redact("x")


def test_good_patterns_pass_and_compile_once():
    check_patterns({"tenant": r"tenant-\d+"})
    check_patterns([r"acme-[a-z]+"])
    r = Redactor()
    assert not hasattr(r, "passes_")
    r.redact("a")
    first = r.passes_
    r.redact("b")
    assert r.passes_ is first


PIECES = [c[1] for c in CORPUS] + [
    OPENAI, JWT, PEM, "password=", "user_id=", "Authorization: Bearer", "\n", " ", '"', "'", "\\\"", ":", "=",
    "<secret>", "<ip:1a2b3c>", "@", "::", "10.0.0.", "fe80::", "%eth0", "[", "]:8080", "key: ", "token", "\\n",
    "<password>", "</", ">", "user_id", "://", "Bearer ",
]


@settings(max_examples=250, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet="ab1:.@=\"' \n\\<>-_", max_size=8)),
                max_size=8))
def test_redact_is_idempotent(parts):
    r = Redactor()
    once = r.redact("".join(parts))
    assert r.redact(once) == once


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_redact_never_raises_and_is_idempotent_on_any_text(text):
    r = Redactor()
    once = r.redact(text)
    assert isinstance(once, str) and r.redact(once) == once

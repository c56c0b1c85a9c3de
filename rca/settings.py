"""Settings from the environment (``RCA_*``) with pydantic-settings; one object, passed down."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rca.errors import BadInput

__all__ = ["Settings", "parse_json_or_yaml"]


def parse_json_or_yaml(text: str, field: str, fix: str) -> Any:
    """A setting that holds structure (scan jobs, notify routes): JSON, else YAML; text that is
    neither is ``BadInput`` naming ``field``."""
    import json

    import yaml

    try:
        return json.loads(text)
    except ValueError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise BadInput(f"{field} is neither JSON nor YAML: {e}", field=field, fix=fix) from None


class Settings(BaseSettings):
    """Every knob of the engine. Environment variables: ``RCA_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="RCA_", extra="ignore")

    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite under XDG data home")
    ranker: str = Field(default="graph", description="ranker registry name")
    incident_before_s: int = Field(default=900, ge=60, description="incident window before the asked time")
    incident_after_s: int = Field(default=300, ge=0, description="incident window after the asked time")
    baseline_s: int = Field(default=10800, ge=300, description="baseline window length before the incident")
    max_window_s: int = Field(default=86400, ge=600, description="longest incident window one analysis takes")
    max_hypotheses: int = Field(default=5, ge=1, le=50)
    reranker: bool = Field(default=True, description="use the store's active learned re-ranker (`rca train ranker`); "
                           "false: the base ranker alone")
    redact_patterns: dict[str, str] = Field(default_factory=dict, description="extra redaction regexes for exports, "
                                            "name -> regex (JSON)")
    redact_salt: str = Field(default="rca", description="key of the pseudonyms in exports (same value -> same "
                             "pseudonym); set a secret one for data that leaves the organisation")
    timezone: str = Field(default="UTC", description="time zone for bare times in questions")
    otlp_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="OTLP request size limit (413 above)")
    otlp_retention_s: int = Field(default=7 * 86400, ge=3600, description="keep received spans/logs this long")
    sources_file: str = Field(default="", description="YAML file with a `sources:` list (see connectors/sources.py)")
    # ---- rca serve --------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="address `rca serve` listens on")
    port: int = Field(default=8080, ge=1, le=65535, description="port `rca serve` listens on")
    analysis_workers: int = Field(default=2, ge=1, le=64, description="analyses run at once; more wait in a queue")
    analysis_timeout_s: float = Field(default=60.0, gt=0, description="an API analysis slower than this is a 503")
    ask_cache_ttl_s: int = Field(default=60, ge=0, description="reuse an identical analysis this long (0 = never)")
    catalog_ttl_s: int = Field(default=300, ge=0, description="refresh the entity catalogue for scope matching")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins; empty = CORS off")
    docs_public: bool = Field(default=True, description="serve /docs and /openapi.json without a key")
    # ---- incident bot (Alertmanager in, notifiers out) ----------------------------------------
    base_url: str = Field(default="", description="public URL of the API for links in messages; "
                          "empty = http://host:port")
    slack_webhook_url: str = Field(default="", description="Slack incoming-webhook URL (secret); empty = off")
    slack_signing_secret: str = Field(default="", description="Slack app signing secret for button actions")
    teams_webhook_url: str = Field(default="", description="Teams Workflows webhook URL (secret); empty = off")
    pagerduty_routing_key: str = Field(default="", description="PagerDuty Events v2 routing key; empty = off")
    webhook_url: str = Field(default="", description="generic JSON webhook URL; empty = off")
    webhook_secret: str = Field(default="", description="HMAC secret signing the generic webhook")
    notify_min_interval_s: float = Field(default=300.0, ge=0, description="at most one update per incident this often")
    notify_min_confidence: float = Field(default=0.0, ge=0, le=1,
                                         description="notify only when the top hypothesis is this confident")
    notify_retry_attempts: int = Field(default=5, ge=1, le=20, description="delivery attempts per message")
    notify_retry_base_s: float = Field(default=1.0, ge=0, description="first delivery back-off (doubles)")
    notify_routes: str = Field(default="", description="notification routes: a JSON or YAML list of "
                               "{match, notifiers, min_confidence, quiet_hours, continue} (api/bot/routing.py); "
                               "empty = every notifier")
    notify_redeliver_s: float = Field(default=60.0, gt=0, description="how often undelivered or held "
                                      "messages are sent again")
    notify_redeliver_max_age_s: float = Field(default=86400.0, gt=0, description="give up redelivering "
                                              "a message this long after its last record")
    bot_worker: bool = Field(default=True, description="run the alert worker inside `rca serve`")
    bot_poll_s: float = Field(default=1.0, gt=0, description="how often an idle worker looks at the queue")
    bot_max_attempts: int = Field(default=5, ge=1, le=50, description="analysis attempts per alert group")
    bot_retry_base_s: float = Field(default=5.0, ge=0, description="first analysis retry back-off (doubles)")
    alert_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Alertmanager payload size limit")
    # ---- scheduled scans (rca/scan_jobs.py) ---------------------------------------------------
    scan_jobs: str = Field(default="", description="scheduled scans: a JSON or YAML list of jobs "
                           "({name, trigger: '*/5 * * * *' or '5m', window, baseline, min_level, selector, sources})")
    scan_workers: int = Field(default=2, ge=1, le=16, description="scan jobs run at once")
    scan_misfire_grace_s: int = Field(default=60, ge=1, description="how late a scheduled scan may still start")

    def resolved_database_url(self) -> str:
        from rca.store import default_database_url

        return self.database_url or default_database_url()

"""Logs: one import point for template mining, header splitting and template anomaly scoring.

The pieces live in ``models.log_masking`` (parameter masks), ``models.log_header`` (generic
header stripper), ``models.log_templates`` (Drain3 miner) and ``models.log_anomaly``
(bursts, new templates, error rates, semantic outliers).
"""

from models.log_anomaly import ERROR_SEVERITIES, TemplateFinding, score_log_templates, template_rates
from models.log_header import split_header
from models.log_masking import MASK, mask
from models.log_templates import LogTemplateMiner, MinedTemplate, mine_templates, template_id

__all__ = ["ERROR_SEVERITIES", "MASK", "LogTemplateMiner", "MinedTemplate", "TemplateFinding", "mask",
           "mine_templates", "score_log_templates", "split_header", "template_id", "template_rates"]

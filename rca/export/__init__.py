"""Datasets from confirmed incidents: records -> validated, split, documented dataset directories.

``records`` turns labelled incidents into records (prompt, diagnosis, hard negatives), ``run``
gathers the labelled incidents (store feedback, simulator) and writes one export, ``schema``
holds the configs and their JSON/Arrow schemas, ``writer`` splits and writes them (JSON lines +
Parquet + manifest), ``card`` renders the Hugging Face dataset card.
"""

from rca.export.card import CardInfo, render_card
from rca.export.records import Labelled, build_records, fingerprint_of, negatives, prompt_of
from rca.export.run import FORMATS, collect_items, export_dataset, sim_items
from rca.export.schema import CONFIGS, arrow_schema, load_schema, validate_records
from rca.export.writer import (
    DEFAULT_RATIOS,
    FILE_FORMATS,
    SPLITS,
    Manifest,
    assign_splits,
    load_split,
    read_manifest,
    split_of,
    write_dataset,
)

__all__ = ["CONFIGS", "DEFAULT_RATIOS", "FILE_FORMATS", "FORMATS", "SPLITS", "CardInfo", "Labelled", "Manifest",
           "arrow_schema", "assign_splits", "build_records", "collect_items", "export_dataset", "fingerprint_of",
           "load_schema", "load_split", "negatives", "prompt_of", "read_manifest", "render_card", "sim_items",
           "split_of", "validate_records", "write_dataset"]

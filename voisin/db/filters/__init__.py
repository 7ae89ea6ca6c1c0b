"""Qdrant's filter language: parse (checked JSON -> nodes), evaluate over
payload columns, and the one-payload reference evaluator."""

from .ast import Bool
from .evaluate import StaticTable, evaluate
from .parse import parse_filter
from .reference import matches

__all__ = ["Bool", "StaticTable", "evaluate", "parse_filter", "matches"]

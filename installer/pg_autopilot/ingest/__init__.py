"""Code ingest: list a codebase's files, read them safely, parse them with tree-sitter, cut them into
chunks along definitions, extract definitions, references and imports -- all database-free and
tested without a server -- then write them (:mod:`.store`, one whole file per transaction) and embed
them (:mod:`.embed`), driven by :mod:`.pipeline`.

The ``code-ingest`` worker and ``autopilot codebase ingest`` run :class:`.pipeline.Ingest` (through
``pg_autopilot.codebases.ingest``).
"""

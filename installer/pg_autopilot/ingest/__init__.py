"""Code ingest, the database-free core: list a codebase's files, read them safely, parse them with
tree-sitter, cut them into chunks along definitions and extract definitions, references and imports.

The ``code-ingest`` worker and ``autopilot codebase ingest`` drive these and write the results to
PostgreSQL; nothing here opens a connection, so all of it is tested without a server.
"""

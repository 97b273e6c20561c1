"""What the autopilot schema is, read from the system catalogs: for comparing installs and upgrades.

``schema_snapshot(conn)`` captures every object of schema ``autopilot`` in a form that does not
depend on OIDs or on how the objects were created (``CREATE EXTENSION``, the plain schema script,
or a chain of upgrade scripts): tables and their columns (in order: composite types and
``SELECT *`` depend on it), constraints, indexes, sequences, functions and procedures, views,
types, triggers, policies, grants, comments, and the rows that belong to the version (the job
catalog and the setting definitions). Two databases hold the same autopilot exactly when their
snapshots are equal; ``snapshot_diff`` says where they are not.

``extension_snapshot(conn)`` is the extension-mode part (which objects are members of the
extension, which tables pg_dump dumps as configuration): compare it between extension-mode
installs only.

Plain SQL over the catalogs, no test framework: pgTAP helpers and tools can reuse the queries.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

SCHEMA = "autopilot"

# Tables whose rows belong to the extension version (written by the install and upgrade scripts,
# not by users). Everything else in the schema is user data, dumped by pg_dump as configuration.
DEFINITION_TABLES = ("job_catalog", "settings")

Snapshot = dict[str, dict[str, Any]]


def _acl(column: str, kind: str, owner: str) -> str:
    """An ACL as a sorted text array, NULL (the built-in default) spelled out: pg_dump leaves out an
    ACL equal to the default, so a restored object may have NULL where the original had it written."""
    return (
        f"(SELECT array_agg(x::text ORDER BY x::text) "
        f"FROM unnest(coalesce({column}, pg_catalog.acldefault({kind}, {owner}))) AS x)"
    )


_RELATIONS = """
    SELECT c.relname, c.relkind::text, c.relpersistence::text, c.relrowsecurity, c.relforcerowsecurity,
           {acl} AS acl, pg_get_userbyid(c.relowner) AS owner,
           c.reloptions
    FROM pg_catalog.pg_class AS c
    WHERE c.relnamespace = %(schema)s::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
    ORDER BY c.relname
""".replace(
    "{acl}", _acl("c.relacl", "CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\"", "c.relowner")
)

_COLUMNS = """
    SELECT c.relname, a.attname,
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
           a.attnotnull AS not_null,
           pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default,
           a.attidentity::text AS identity,
           a.attgenerated::text AS generated,
           CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation,
           (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(a.attacl) AS x) AS acl
    FROM pg_catalog.pg_attribute AS a
    JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_catalog.pg_collation AS co ON co.oid = a.attcollation
    WHERE c.relnamespace = %(schema)s::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
    SELECT coalesce(c.relname, ty.typname) AS owner_name, k.conname, k.contype::text,
           pg_catalog.pg_get_constraintdef(k.oid, true) AS definition,
           k.condeferrable, k.condeferred, k.convalidated
    FROM pg_catalog.pg_constraint AS k
    LEFT JOIN pg_catalog.pg_class AS c ON c.oid = k.conrelid
    LEFT JOIN pg_catalog.pg_type AS ty ON ty.oid = k.contypid
    WHERE k.connamespace = %(schema)s::regnamespace
    ORDER BY 1, 2
"""

_INDEXES = """
    SELECT i.relname, pg_catalog.pg_get_indexdef(i.oid) AS definition,
           x.indisunique, x.indisprimary, x.indisvalid, x.indisclustered
    FROM pg_catalog.pg_index AS x
    JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
    WHERE i.relnamespace = %(schema)s::regnamespace
    ORDER BY i.relname
"""

_SEQUENCES = """
    SELECT c.relname, pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement,
           s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
           (SELECT dc.relname || '.' || a.attname
            FROM pg_catalog.pg_depend AS d
            JOIN pg_catalog.pg_class AS dc ON dc.oid = d.refobjid
            JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owned_by
    FROM pg_catalog.pg_sequence AS s
    JOIN pg_catalog.pg_class AS c ON c.oid = s.seqrelid
    WHERE c.relnamespace = %(schema)s::regnamespace
    ORDER BY c.relname
"""

_ROUTINES = """
    SELECT p.oid::regprocedure::text AS signature, p.prokind::text,
           CASE WHEN p.prokind = 'a' THEN NULL ELSE pg_catalog.pg_get_functiondef(p.oid) END AS definition,
           p.proconfig, p.prosecdef, p.provolatile::text, p.proisstrict, p.proparallel::text,
           p.proleakproof, p.procost, p.prorows,
           {proacl} AS acl, pg_get_userbyid(p.proowner) AS owner
    FROM pg_catalog.pg_proc AS p
    WHERE p.pronamespace = %(schema)s::regnamespace
    ORDER BY 1
""".replace("{proacl}", _acl("p.proacl", "'f'", "p.proowner"))

_VIEWS = """
    SELECT c.relname, pg_catalog.pg_get_viewdef(c.oid, true) AS definition, c.reloptions
    FROM pg_catalog.pg_class AS c
    WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('v', 'm')
    ORDER BY c.relname
"""

# the types a user creates (the row types of tables, views and sequences are covered by those)
_TYPES = """
    SELECT t.typname, t.typtype::text,
           CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END AS base,
           t.typnotnull, t.typdefault,
           (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
            FROM pg_catalog.pg_enum AS e WHERE e.enumtypid = t.oid) AS labels,
           (SELECT pg_catalog.format_type(r.rngsubtype, NULL)
            FROM pg_catalog.pg_range AS r WHERE r.rngtypid = t.oid) AS range_subtype,
           {typacl} AS acl, pg_get_userbyid(t.typowner) AS owner
    FROM pg_catalog.pg_type AS t
    LEFT JOIN pg_catalog.pg_class AS c ON c.oid = t.typrelid
    WHERE t.typnamespace = %(schema)s::regnamespace
      AND (t.typtype IN ('d', 'e', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c'))
    ORDER BY t.typname
""".replace("{typacl}", _acl("t.typacl", "'T'", "t.typowner"))

_TRIGGERS = """
    SELECT c.relname, g.tgname, pg_catalog.pg_get_triggerdef(g.oid, true) AS definition,
           g.tgenabled::text AS enabled
    FROM pg_catalog.pg_trigger AS g
    JOIN pg_catalog.pg_class AS c ON c.oid = g.tgrelid
    WHERE c.relnamespace = %(schema)s::regnamespace AND NOT g.tgisinternal
    ORDER BY 1, 2
"""

_POLICIES = """
    SELECT p.tablename, p.policyname, p.permissive, p.roles::text[], p.cmd, p.qual, p.with_check
    FROM pg_catalog.pg_policies AS p
    WHERE p.schemaname = %(schema)s
    ORDER BY 1, 2
"""

_SCHEMA = """
    SELECT n.nspname, {nspacl} AS acl, pg_get_userbyid(n.nspowner) AS owner
    FROM pg_catalog.pg_namespace AS n WHERE n.nspname = %(schema)s
""".replace("{nspacl}", _acl("n.nspacl", "'n'", "n.nspowner"))

# every comment on the schema or on anything in it (tables, columns, functions, constraints, ...),
# named by pg_identify_object: the same name whatever the OIDs
_COMMENTS = """
    SELECT o.type || ' ' || o.identity AS object, d.description
    FROM pg_catalog.pg_description AS d
    CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
    WHERE d.classoid <> 'pg_catalog.pg_extension'::regclass
      AND (o.schema = %(schema)s
           OR (d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = %(schema)s::regnamespace))
    ORDER BY 1
"""


def _rows(conn: psycopg.Connection, query: str, key: tuple[str, ...], schema: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"schema": schema}).fetchall()
    out: dict[str, Any] = {}
    for row in rows:
        name = ".".join(str(row.pop(k)) for k in key)
        assert name not in out, f"snapshot key {name!r} is not unique"
        out[name] = row
    return out


def _columns(conn: psycopg.Connection, schema: str) -> dict[str, Any]:
    """table -> the ordered list of its columns (order matters: composite types, SELECT *)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_COLUMNS, {"schema": schema}).fetchall()
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row.pop("relname"), []).append(row)
    return out


def definition_rows(conn: psycopg.Connection, schema: str = SCHEMA) -> dict[str, Any]:
    """The rows of the tables that belong to the version (job catalog, setting definitions)."""
    out: dict[str, Any] = {}
    for table in DEFINITION_TABLES:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{schema}.{table}"]).fetchone()[0]
        if not exists:
            continue
        query = sql.SQL("SELECT to_jsonb(t) FROM {}.{} AS t ORDER BY to_jsonb(t)::text").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        out[table] = [r[0] for r in conn.execute(query).fetchall()]
    return out


def schema_snapshot(conn: psycopg.Connection, schema: str = SCHEMA) -> Snapshot:
    """Everything that defines the autopilot schema in this database, OID-free and comparable."""
    return {
        "schema": _rows(conn, _SCHEMA, ("nspname",), schema),
        "relations": _rows(conn, _RELATIONS, ("relname",), schema),
        "columns": _columns(conn, schema),
        "constraints": _rows(conn, _CONSTRAINTS, ("owner_name", "conname"), schema),
        "indexes": _rows(conn, _INDEXES, ("relname",), schema),
        "sequences": _rows(conn, _SEQUENCES, ("relname",), schema),
        "routines": _rows(conn, _ROUTINES, ("signature",), schema),
        "views": _rows(conn, _VIEWS, ("relname",), schema),
        "types": _rows(conn, _TYPES, ("typname",), schema),
        "triggers": _rows(conn, _TRIGGERS, ("relname", "tgname"), schema),
        "policies": _rows(conn, _POLICIES, ("tablename", "policyname"), schema),
        "comments": _rows(conn, _COMMENTS, ("object",), schema),
        "rows": definition_rows(conn, schema),
    }


def extension_snapshot(
    conn: psycopg.Connection, extension: str = "autopilot", schema: str = SCHEMA
) -> Snapshot:
    """Extension mode only: the members of the extension and what pg_dump dumps as configuration."""
    members = conn.execute(
        """
        SELECT coalesce(array_agg(o.type || ' ' || o.identity ORDER BY o.type || ' ' || o.identity), '{}')
        FROM pg_catalog.pg_depend AS d
        CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) AS o
        WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
          AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = %s)
        """,
        [extension],
    ).fetchone()[0]
    config = conn.execute(
        """
        SELECT coalesce(jsonb_object_agg(c.relname, coalesce(x.extcondition[i], '')), '{}')
        FROM pg_catalog.pg_extension AS x
        CROSS JOIN LATERAL generate_subscripts(x.extconfig, 1) AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = x.extconfig[i]
        WHERE x.extname = %s
        """,
        [extension],
    ).fetchone()[0]
    # objects of the schema that are not members: DROP EXTENSION would leave them behind
    strays = conn.execute(
        """
        SELECT coalesce(array_agg(x.name ORDER BY x.name), '{}') FROM (
            SELECT 'relation ' || c.relname AS name, 'pg_catalog.pg_class'::regclass AS classid, c.oid
            FROM pg_catalog.pg_class AS c
            WHERE c.relnamespace = %(schema)s::regnamespace
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
            UNION ALL
            SELECT 'routine ' || p.oid::regprocedure::text, 'pg_catalog.pg_proc'::regclass, p.oid
            FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = %(schema)s::regnamespace
        ) AS x
        WHERE NOT EXISTS (
            SELECT FROM pg_catalog.pg_depend AS d
            WHERE d.classid = x.classid AND d.objid = x.oid AND d.deptype = 'e'
        )
          -- a sequence behind an identity column and a composite row type belong to their table
          AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_depend AS d
            WHERE d.classid = x.classid AND d.objid = x.oid AND d.deptype IN ('i', 'a')
              AND d.refclassid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_type'::regclass)
          )
        """,
        {"schema": schema},
    ).fetchone()[0]
    return {"members": {"objects": members}, "config_tables": config, "strays": {"objects": strays}}


def snapshot_diff(a: Snapshot, b: Snapshot, names: tuple[str, str] = ("a", "b")) -> list[str]:
    """Readable differences between two snapshots; empty when they are equal."""
    out: list[str] = []
    for section in sorted(set(a) | set(b)):
        left, right = a.get(section, {}), b.get(section, {})
        for key in sorted(set(left) | set(right)):
            if key not in right:
                out.append(f"{section}: {key} only in {names[0]}")
            elif key not in left:
                out.append(f"{section}: {key} only in {names[1]}")
            elif left[key] != right[key]:
                out.append(
                    f"{section}: {key} differs:\n  {names[0]}: {left[key]!r}\n  {names[1]}: {right[key]!r}"
                )
    return out

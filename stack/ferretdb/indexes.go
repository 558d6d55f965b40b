package main

// ginTwinsSQL makes PostgreSQL able to use an index for FerretDB's queries.
//
// FerretDB 1.24 pushes a filter's equalities down as `(_jsonb -> 'field') @> value`
// (backends/postgresql/query.go, filterEqual), but the indexes it creates for MongoDB
// indexes, `_id` included, are btree indexes on `(_jsonb -> 'field')`, which cannot serve
// `@>`: every find, update and delete was a sequential scan of its collection (8.5 ms per
// lookup by `_id` in a collection of 20,000 documents, growing with it). A GIN index on
// the same expression (jsonb_path_ops) serves `@>` (0.6 ms there). An event trigger gives
// every btree expression index FerretDB creates such a twin, one per field; indexes
// created before the trigger existed get theirs at start-up. Descending columns get none:
// our services declare a key descending only to sort by it (thread lists by latest
// activity), never to look it up by equality, and each twin costs every insert and every
// update of its field (a post moves its thread's two activity times). A twin outlives a
// dropped MongoDB index until its collection is dropped (it only costs writes). No fast
// update: with it, the insert that finds GIN's pending list full merges the whole list
// into the index while its client waits (a post during a bulk job paid for the job's
// inserts).
const ginTwinsSQL = `
CREATE OR REPLACE FUNCTION threadline_gin_twins_of(index_oid oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    target regclass;
    method name;
    column_number int;
    expression text;
    field text;
BEGIN
    SELECT i.indrelid::regclass, am.amname INTO target, method
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
     WHERE i.indexrelid = index_oid;
    IF target IS NULL OR method <> 'btree' THEN
        RETURN;
    END IF;
    FOR column_number IN  -- ascending columns only: a descending one is a sort key
        SELECT n FROM pg_index, generate_series(1, indnkeyatts) AS n
         WHERE indexrelid = index_oid AND indoption[n - 1] & 1 = 0
    LOOP
        expression := pg_get_indexdef(index_oid, column_number, true);
        field := substring(expression FROM '^\(?_jsonb -> ''((?:[^'']|'''')*)''::text\)?$');
        IF field IS NOT NULL THEN
            EXECUTE format(
                'CREATE INDEX IF NOT EXISTS %I ON %s USING gin (%s jsonb_path_ops)'
                    || ' WITH (fastupdate = off)',
                left((SELECT relname FROM pg_class WHERE oid = target), 40)
                    || '_' || left(md5(field), 12) || '_gin',
                target, expression);
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION threadline_gin_twins() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX'
    LOOP
        PERFORM threadline_gin_twins_of(created.objid);
    END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS threadline_gin_twins;
CREATE EVENT TRIGGER threadline_gin_twins ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
    EXECUTE FUNCTION threadline_gin_twins();

SELECT count(threadline_gin_twins_of(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast');
`

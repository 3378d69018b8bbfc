-- Migration 9's partial index decided which spans it holds with instr() over each span's whole
-- attribute text, on every insert: 3.5% of the server's instructions under load. The writer
-- now marks those spans itself (RequestOrBlock = 1: a `Server` span, or one carrying
-- `glassbox.tripwire.processor`), and the index holds the marked rows. Rows from before this
-- migration are marked here by the old condition, read through the old index (which holds
-- exactly them); the others read as 0 without being rewritten.
--
-- A binary older than this migration cannot serve this file: its overview query names the
-- index with the old condition (SQLite refuses it), and the spans it would insert are not
-- marked. (A trigger marking them cost 9,500 instructions per span insert, SQLite's
-- sub-program for every row: more than the index saved.) To go back, drop this index,
-- create migration 9's again, and delete version 10 from glassbox_migrations.
ALTER TABLE spans ADD COLUMN RequestOrBlock INTEGER NOT NULL DEFAULT 0;

UPDATE spans INDEXED BY spans_requests SET RequestOrBlock = 1
    WHERE SpanKind = 'Server' OR instr(SpanAttributes, '"glassbox.tripwire.processor"') > 0;

DROP INDEX spans_requests;

CREATE INDEX spans_requests ON spans (Timestamp) WHERE RequestOrBlock = 1;

-- Languages (issue #17): the language the buyer ordered in ('en', 'de' or 'fr'), so that the ticket mail,
-- the PDF, passes and text messages sent later by the outbox speak it. Orders from before this migration
-- are English. Portable SQL (SQLite and PostgreSQL).
ALTER TABLE orders ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';

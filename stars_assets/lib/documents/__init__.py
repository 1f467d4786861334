"""Member outreach documents: built in DuckDB from the warehouse, kept in a document store, served by the API."""

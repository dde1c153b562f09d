"""Event collection: the ingest endpoint (AWS Lambda behind an API Gateway HTTP API, and the
same handler behind a local HTTP server), the browser tracker and the demo storefront."""

// Package transform owns the transformations of event content that ingest
// and the consumer share: parsing user agents into device fields behind a
// bounded cache and a parse budget (UAParser), finding and anonymising the
// client's IP address (ClientIP, AnonymizeIP), and scrubbing secrets and
// personal data out of free text and URLs (Scrubber). It is pure
// computation: it must not know HTTP ingest, the bus or ClickHouse, and
// holds no goroutines.
package transform

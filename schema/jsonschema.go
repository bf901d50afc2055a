package schema

import (
	"embed"
	"io/fs"
)

// SchemaID is the base URI of the JSON Schema documents of this Version of
// the contract. Every document's $id is SchemaID followed by its file name
// (for example SchemaID+"event.json"), and documents refer to each other by
// relative file name. The URI is an identifier: validators must be given the
// documents (see JSONSchema), not made to fetch them.
const SchemaID = "https://schemas.sora3web.com/telemetry/v1/"

// JSONSchema file names, relative to SchemaID and to the root of JSONSchema().
const (
	// SchemaEvent validates any client event: the envelope plus the rules
	// of its type, dispatched on "type".
	SchemaEvent = "event.json"
	// SchemaEnvelope validates the fields common to every event.
	SchemaEnvelope = "envelope.json"
	// SchemaProperties validates the shape and bounds of "properties".
	SchemaProperties = "properties.json"
	// SchemaEnriched validates a message the collector publishes.
	SchemaEnriched = "enriched.json"
)

//go:embed jsonschema/*.json
var jsonSchemaFiles embed.FS

// JSONSchema returns the JSON Schema (draft 2020-12) documents of the
// contract: envelope.json, properties.json, event.json, enriched.json and
// one <type>.json per entry of Types. They agree with Event, Enriched and
// Validate; contract_test.go proves it.
func JSONSchema() fs.FS {
	sub, err := fs.Sub(jsonSchemaFiles, "jsonschema")
	if err != nil {
		panic(err) // unreachable: the directory is embedded
	}
	return sub
}

// TypeSchema returns the JSON Schema file name of an event type, for
// example "generation_requested.json". It does not check that typ is one of
// Types.
func TypeSchema(typ string) string { return typ + ".json" }

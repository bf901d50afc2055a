package chserver

import (
	"fmt"
	"net/url"
	"strings"
)

// Request parameters that are not settings: they steer the HTTP layer.
var controlParams = map[string]bool{
	"query": true, "database": true, "default_format": true,
	"user": true, "password": true, "quota_key": true, "query_id": true,
	"compress": true, "decompress": true, "enable_http_compression": true,
	"client_protocol_version": true, "network_compression_method": true,
	"network_zstd_compression_level": true, "http_zlib_compression_level": true,
	"session_id": true, "session_check": true, "session_timeout": true,
}

// ignoredSettings are accepted and have no effect, because the behaviour
// they select is what this server always does or does not apply to it.
var ignoredSettings = map[string]string{
	"wait_end_of_query":                            "the whole result is always buffered before the response starts",
	"buffer_size":                                  "the whole result is always buffered",
	"http_response_buffer_size":                    "the whole result is always buffered",
	"send_progress_in_http_headers":                "no progress headers are sent; X-ClickHouse-Summary is",
	"http_headers_progress_interval_ms":            "no progress headers are sent",
	"async_insert":                                 "inserts are always synchronous (stronger than async)",
	"wait_for_async_insert":                        "inserts are always synchronous",
	"async_insert_deduplicate":                     "inserts are always synchronous; use insert_deduplication_token",
	"async_insert_busy_timeout_ms":                 "inserts are always synchronous",
	"async_insert_max_data_size":                   "inserts are always synchronous",
	"add_http_cors_header":                         "CORS is not supported",
	"log_queries":                                  "there is no query log",
	"cancel_http_readonly_queries_on_client_close": "a read-only query is always cancelled when its client goes away; a write runs to its end",
	"date_time_input_format_strict":                "",
}

// fallbackSettings are SET for the duration of the request when the
// engine's own list (system.settings) could not be read.
var fallbackSettings = map[string]bool{
	"max_execution_time": true, "timeout_overflow_mode": true,
	"max_result_rows": true, "max_result_bytes": true, "result_overflow_mode": true,
	"max_rows_to_read": true, "max_bytes_to_read": true, "read_overflow_mode": true,
	"max_memory_usage": true, "max_threads": true, "max_block_size": true,
	"max_insert_block_size": true, "min_insert_block_size_rows": true, "min_insert_block_size_bytes": true,
	"max_insert_threads": true, "max_query_size": true, "max_ast_elements": true,
	"insert_deduplication_token": true, "insert_deduplicate": true,
	"insert_null_as_default": true, "mutations_sync": true, "alter_sync": true,
	"join_use_nulls": true, "extremes": true,
	"session_timezone": true, "use_client_time_zone": true,
	"allow_suspicious_low_cardinality_types": true, "allow_nullable_key": true,
	"optimize_on_insert": true, "final": true, "select_sequential_consistency": true,
}

// readonlySetting is enforced by the server, never SET on the shared
// engine session: with readonly on, the engine would refuse the statement
// that resets it.
const readonlySetting = "readonly"

// settingsFrom extracts the engine settings of a request from its URL
// parameters: every setting the engine knows (known: its system.settings),
// except those ignoredSettings leaves out and readonly, which the caller
// enforces. param_* go to params. An unknown parameter is an error
// (UNKNOWN_SETTING), so a client never silently loses a setting.
func settingsFrom(q url.Values, known map[string]bool) (settings map[string]string, params map[string]string, err error) {
	settings, params = map[string]string{}, map[string]string{}
	for k, vs := range q {
		v := vs[len(vs)-1]
		if _, ok := ignoredSettings[k]; ok || controlParams[k] || k == readonlySetting {
			continue
		}
		switch {
		case strings.HasPrefix(k, "param_"):
			params[strings.TrimPrefix(k, "param_")] = v
		case isExternalTableParam(k, known):
			return nil, nil, &serverError{code: 48, name: "NOT_IMPLEMENTED", msg: "external tables (" + k + ") are not supported by this server"}
		case known[k]:
			settings[k] = v
		default:
			return nil, nil, unknownSetting(k)
		}
	}
	return settings, params, nil
}

// unknownSetting is ClickHouse's answer to a setting it does not know.
func unknownSetting(name string) error {
	return &serverError{code: 115, name: "UNKNOWN_SETTING", msg: fmt.Sprintf("Unknown setting '%s'", name)}
}

// isExternalTableParam reports whether k names a part of an external
// table (<name>_structure, _types, _format) rather than a setting.
func isExternalTableParam(k string, known map[string]bool) bool {
	for _, suffix := range []string{"_structure", "_types", "_format"} {
		if strings.HasSuffix(k, suffix) && k != "default_format" && !known[k] {
			return true
		}
	}
	return false
}

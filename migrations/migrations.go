// Package migrations embeds the schema of both storage engines in the binary.
// Files follow golang-migrate's naming: NNNNNN_name.up.sql / .down.sql, one
// directory per engine with the same version numbers in each.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

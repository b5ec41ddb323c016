// Command secrethub is SecretHub's one binary: the Core server, the admin
// workflows and scripting access to secrets. See package command.
package main

import (
	"os"

	"github.com/secrethub/secrethub/command"
)

func main() { os.Exit(command.Execute()) }

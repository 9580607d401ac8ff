package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"spawnd/policy"
)

// runCheck is `spawnd check [-c DIR]`: load and validate everything serve
// would, print the resolved services on stdout and warnings and errors on
// stderr. It opens no socket and starts nothing.
func runCheck(args []string) int {
	fs := flag.NewFlagSet("spawnd check", flag.ContinueOnError)
	dir := fs.String("c", "/etc/spawnd", "configuration `directory`")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: spawnd check [-c directory]")
		return 2
	}
	p, err := policy.Load(*dir, os.Environ())
	for _, w := range p.Warnings {
		fmt.Fprintln(os.Stderr, "warning: "+w)
	}
	if err != nil {
		return fatalf("%v", err)
	}
	for _, s := range p.Services {
		argv := make([]string, len(s.Argv))
		for i, a := range s.Argv { // master.cf's { } grouping where needed
			if argv[i] = a; a == "" || strings.ContainsAny(a, " \t") {
				argv[i] = "{ " + a + " }"
			}
		}
		line := fmt.Sprintf("%s %s %s user=%s group=%s time_limit=%ds process_limit=%d",
			s.Name, s.Endpoint.Type, s.Endpoint.Address, s.User, s.Group, int64(s.TimeLimit.Seconds()), s.ProcessLimit)
		// the limits set, in main.cf's names (the command's without command_)
		for _, l := range [][2]any{{"cpu_limit", s.Limits.CPU}, {"address_space_limit", s.Limits.AddressSpace},
			{"open_files_limit", s.Limits.OpenFiles}, {"nproc_limit", s.Limits.Processes}, {"file_size_limit", s.Limits.FileSize},
			{"client_connection_limit", s.ClientLimit}, {"client_connection_rate_limit", s.RateLimit}} {
			if v := fmt.Sprint(l[1]); v != "0" {
				line += fmt.Sprintf(" %s=%s", l[0], v)
			}
		}
		if s.Limits.NoNewPrivileges {
			line += " no_new_privileges=yes"
		}
		if s.RateLimit > 0 {
			line += fmt.Sprintf(" client_rate_time_unit=%ds", int64(s.RateUnit.Seconds()))
		}
		if len(s.Access) > 0 {
			line += " client_access={ " + s.Access.String() + " }"
		}
		fmt.Println(line + " argv=" + strings.Join(argv, " "))
	}
	return 0
}

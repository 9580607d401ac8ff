package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmePostconfSilent: every master.cf entry of README.md's Postfix
// section ("Replacing spawn(8) under Postfix"), with the section's main.cf
// lines, passes postconf -n without a warning, as the README says.
// postconf warns "unused parameter" for the forms it does not know for a
// spawnd service; the README shows only forms it knows.
func TestReadmePostconfSilent(t *testing.T) {
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		t.Skip("postconf not installed (Debian's postfix package): cannot check the README's examples with it")
	}
	readme := readRepoFile(t, "README.md")
	_, section, _ := strings.Cut(readme, "\n## Replacing spawn(8) under Postfix\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var mainCF string
	var entries []string
	for _, block := range strings.Split(section, "\n\n") {
		if !strings.HasPrefix(block, "    ") {
			continue
		}
		text := strings.ReplaceAll(strings.TrimPrefix(block, "    "), "\n    ", "\n") + "\n"
		if strings.HasPrefix(text, "# main.cf") {
			mainCF += text
			continue
		}
		for _, ln := range strings.SplitAfter(text, "\n") { // one entry: a line and its continuation lines
			if strings.HasPrefix(ln, " ") || strings.HasPrefix(ln, "\t") {
				entries[len(entries)-1] += ln
			} else if ln != "" && !strings.HasPrefix(ln, "#") {
				entries = append(entries, ln)
			}
		}
	}
	if mainCF == "" || len(entries) < 3 {
		t.Fatalf("README's Postfix section has lost its examples: main.cf %q, master.cf entries %q", mainCF, entries)
	}
	for _, entry := range entries {
		dir := tempDir(t)
		old := time.Now().Add(-time.Hour) // postconf rereads a file changed in the last second
		for name, text := range map[string]string{"main.cf": mainCF, "master.cf": entry} {
			file := filepath.Join(dir, name)
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(file, old, old)
		}
		out, err := exec.Command(postconf, "-c", dir, "-n").CombinedOutput()
		if err != nil || strings.Contains(string(out), "warning") {
			t.Errorf("postconf -n warns about the README's example (%v):\nmaster.cf:\n%smain.cf:\n%s\n%s", err, entry, mainCF, out)
		}
	}
	// And the form the README says postconf warns about does warn: this
	// test would notice a postconf that no longer does.
	dir := tempDir(t)
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte("policy_time_limit = 60\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte(entries[len(entries)-1]), 0o644)
	if out, _ := exec.Command(postconf, "-c", dir, "-n").CombinedOutput(); !strings.Contains(string(out), "unused parameter: policy_time_limit=60") {
		t.Errorf("postconf -n no longer warns about policy_time_limit of a spawnd service:\n%s", out)
	}
}

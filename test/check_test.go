package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkBinary builds spawnd from the module into t's temporary directory
// and returns its path. It needs nothing from the package's other files;
// the go build cache makes a second build in one run cheap.
func checkBinary(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		t.Fatalf("go env GOMOD: %v %q", err, gomod)
	}
	bin := filepath.Join(t.TempDir(), "spawnd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/spawnd")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/spawnd: %v\n%s", err, out)
	}
	return bin
}

// checkRun runs `spawnd check` with args in dir and returns its exit
// code, standard output and standard error.
func checkRun(t *testing.T, bin, dir string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"check"}, args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestCheckCommand: spawnd check as an administrator uses it. The demo
// configuration prints its two services and exits 0; each directory of
// testdata/config is a broken configuration, for which check prints
// exactly its want file on standard error, nothing on standard output,
// and exits 1; warnings do not fail a configuration.
func TestCheckCommand(t *testing.T) {
	bin := checkBinary(t)
	t.Run("examples", func(t *testing.T) {
		code, out, errs := checkRun(t, bin, "..", "-c", "examples")
		rules := " client_connection_limit=2 client_access={ 127.0.0.0/8 ::1/128 uid:0 }"
		want := "127.0.0.1:10025 inet 127.0.0.1:10025 user=nobody group=nogroup time_limit=10s process_limit=4" + rules + " argv=/bin/echo hello from spawnd\n" +
			"id unix /run/spawnd-demo/private/id user=nobody group=nogroup time_limit=10s process_limit=100" + rules + " argv=/usr/bin/id\n"
		if code != 0 || out != want || strings.Contains(errs, "fatal:") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", code, out, errs, want)
		}
	})
	cases, _ := filepath.Glob("testdata/config/*/want")
	if len(cases) < 20 {
		t.Fatalf("found %d cases in testdata/config", len(cases))
	}
	for _, want := range cases {
		name := filepath.Base(filepath.Dir(want))
		t.Run(name, func(t *testing.T) {
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			code, out, errs := checkRun(t, bin, "testdata/config", "-c", name)
			if code != 1 || out != "" || errs != string(w) {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant stderr:\n%s", code, out, errs, w)
			}
		})
	}
	t.Run("warnings", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "private"), 0o755)
		os.WriteFile(filepath.Join(dir, "main.cf"), []byte("mail_owner = daemon\nqueue_directory = "+dir+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "master.cf"), []byte("# service type private unpriv chroot wakeup maxproc command + args\n"+
			"sh unix - n n - 0 spawnd -o sh_time_limit=2m -o command_cpu_limit=1m -o command_nproc_limit=5 -o command_no_new_privileges=yes\n"+
			"  user=nobody:nogroup argv=/bin/sh -c { echo hi }\n"), 0o644)
		code, out, errs := checkRun(t, bin, dir, "-c", ".")
		wantOut := "sh unix " + dir + "/private/sh user=nobody group=nogroup time_limit=120s process_limit=0 cpu_limit=60 nproc_limit=5 no_new_privileges=yes argv=/bin/sh -c { echo hi }\n"
		wantErr := "warning: master.cf: line 2: service sh: socket directory " + dir + "/private of a private service is open to other users (mode 0755)\n"
		if code != 0 || out != wantOut || errs != wantErr {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s%s", code, out, errs, wantOut, wantErr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"-x"}, {"-c", "examples", "extra"}} {
			if code, out, errs := checkRun(t, bin, "..", args...); code != 2 || out != "" || !strings.Contains(errs, "usage: spawnd check [-c directory]") {
				t.Errorf("%q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
			}
		}
	})
}

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestServeQueueDirClosedToUser: a command inherits the working directory
// spawnd entered as root, queue_directory, as spawn(8)'s commands inherit
// master(8)'s, whatever directory spawnd was started in: it runs there
// although the directory is closed to the service's user (a chdir as the
// user would fail).
func TestServeQueueDirClosedToUser(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	queue := filepath.Join(tempDir(t), "queue")
	if err := os.Mkdir(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	tcp := loopback(t)
	StartServe(t, Config{
		Main:   "queue_directory = " + queue,
		Master: fmt.Sprintf("%s inet n n n - - spawnd user=nobody argv=/bin/pwd\n", tcp),
		Ready:  []string{"tcp " + tcp},
	})
	if got, err := Talk("tcp", tcp, "", 20*time.Second); err != nil || got != queue+"\n" {
		t.Fatalf("got %q, %v; want %q", got, err, queue+"\n")
	}
}

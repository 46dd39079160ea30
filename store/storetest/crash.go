package storetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// envCrashChild carries the store location to the child process of Crash.
const envCrashChild = "SSOGATE_STORETEST_CRASH_CHILD"

// Opener opens a store at a backend-specific location (a file path, a
// DSN).
type Opener func(ctx context.Context, location string) (store.Store, error)

// CrashHelper is the child side of Crash. Call it from a test function of
// the backend's package (named as Crash's helperTest); it does nothing
// unless Crash started this process. The child commits values in a loop
// (a session, then a code consumed) and prints each one after the store
// returned nil, until it is killed.
func CrashHelper(t *testing.T, open Opener) {
	location := os.Getenv(envCrashChild)
	if location == "" {
		t.Skip("child process of a crash test only")
	}
	ctx := context.Background()
	st, err := open(ctx, location)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: open: %v\n", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("crash-%d", i)
		s := session(id, "acme", "alice")
		s.ExpiresAt = time.Now().Add(time.Hour)
		if err := st.CreateSession(ctx, s); err != nil {
			fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("session %s\n", id)
		c := code(id)
		c.ExpiresAt = s.ExpiresAt
		if err := st.PutCode(ctx, c); err != nil {
			fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
			os.Exit(2)
		}
		if _, err := st.ConsumeCode(ctx, c.Hash, time.Now()); err != nil {
			fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("consumed %s\n", id)
	}
}

// Crash re-executes the test binary to run helperTest (which calls
// CrashHelper) against location, kills it with SIGKILL once it has
// committed at least minCommits values, reopens the store and checks that
// every value the child reported as committed is there: each session
// exists and each consumed code is still consumed.
func Crash(t *testing.T, helperTest, location string, minCommits int, open Opener) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helperTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashChild+"="+location)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	killed := false
	timeout := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !killed && len(lines) >= minCommits {
			// Mid-loop: the child is between or inside transactions.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d commits (%v): %s", len(lines), err, stderr.String())
	}
	t.Logf("child killed after reporting %d commits", len(lines))

	ctx := context.Background()
	st, err := open(ctx, location)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	for _, line := range lines {
		kind, id, ok := strings.Cut(line, " ")
		switch {
		case ok && kind == "session":
			if _, err := st.GetSession(ctx, id); err != nil {
				t.Errorf("session %s was committed before the crash: %v", id, err)
			}
		case ok && kind == "consumed":
			if _, err := st.ConsumeCode(ctx, hash(id), time.Now()); !errors.Is(err, store.ErrConsumed) {
				t.Errorf("code of %s was consumed before the crash; now: %v, want %v", id, err, store.ErrConsumed)
			}
		default:
			// Test framework output; the child prints nothing else.
		}
	}
}

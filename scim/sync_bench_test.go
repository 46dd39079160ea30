package scim_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// syncScale is the initial sync of a 10,000-person company: every user
// created (after Entra ID's filter GET), then 500 groups whose members
// (up to 2,000 each, 100 per PATCH as Entra ID batches them) are added.
// SSOGATE_SYNC_USERS scales it down for a quick look.
func syncScale() (users, groups, maxMembers int) {
	users, groups, maxMembers = 10_000, 500, 2_000
	if n, err := strconv.Atoi(os.Getenv("SSOGATE_SYNC_USERS")); err == nil && n > 0 {
		users, groups, maxMembers = n, max(1, n/20), max(1, n/5)
	}
	return users, groups, maxMembers
}

// initialSync runs the sync against f and checks that it all landed.
func initialSync(b *testing.B, f *fixture) int {
	users, groups, maxMembers := syncScale()
	ids := make([]string, users)
	for i := range users {
		name := fmt.Sprintf("user%05d@sync.example", i)
		f.mustDo(b, 200, "GET", "/Users?filter=userName+eq+%22"+name+"%22", "")
		ids[i] = f.mustDo(b, 201, "POST", "/Users", userJSON(name)).body["id"].(string)
	}
	memberships := 0
	for g := range groups {
		gid := f.mustDo(b, 201, "POST", "/Groups", fmt.Sprintf(`{"displayName":"group-%03d","members":[]}`, g)).body["id"].(string)
		size := (g*397)%maxMembers + 1
		for start := 0; start < size; start += 100 {
			var vals []string
			for k := start; k < min(start+100, size); k++ {
				vals = append(vals, fmt.Sprintf(`{"value":%q}`, ids[(g*131+k)%users]))
			}
			f.mustDo(b, 200, "PATCH", "/Groups/"+gid+"?excludedAttributes=members", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"Add","path":"members","value":[`+strings.Join(vals, ",")+`]}]}`)
		}
		got, err := f.st.GroupMembers(context.Background(), "acme", gid)
		if err != nil || len(got) != size {
			b.Fatalf("group %d has %d members, want %d: %v", g, len(got), size, err)
		}
		memberships += size
	}
	return memberships
}

func (f *fixture) mustDo(b *testing.B, want int, method, path, body string) response {
	b.Helper()
	r := f.do(b, method, path, body)
	if r.status != want {
		b.Fatalf("%s %s = %d, want %d: %s", method, path, r.status, want, r.raw)
	}
	return r
}

// BenchmarkInitialSync measures the initial sync over HTTP on each
// backend, beside a plain CreateSession loop of as many rows on the same
// backend in the same run (the ratio is what to compare across machines):
//
//	go test ./scim -run '^$' -bench InitialSync -benchtime 1x
func BenchmarkInitialSync(b *testing.B) {
	users, _, _ := syncScale()
	for _, be := range backends {
		b.Run(be.name+"/scim", func(b *testing.B) {
			var elapsed time.Duration
			var memberships int
			for range b.N {
				b.StopTimer()
				f := newFixture(b, be.open(b))
				b.StartTimer()
				start := time.Now()
				memberships = initialSync(b, f)
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(users*b.N)/elapsed.Seconds(), "users/s")
			b.ReportMetric(float64(memberships*b.N)/elapsed.Seconds(), "memberships/s")
		})
		b.Run(be.name+"/CreateSession", func(b *testing.B) {
			var elapsed time.Duration
			for n := range b.N {
				b.StopTimer()
				st := be.open(b)
				b.StartTimer()
				start := time.Now()
				for i := range users {
					if err := st.CreateSession(context.Background(), store.Session{ID: fmt.Sprintf("s%d-%d", n, i), ConnectionID: "acme",
						Subject: "sub", NameID: "n", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
						b.Fatal(err)
					}
				}
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(users*b.N)/elapsed.Seconds(), "sessions/s")
		})
	}
}

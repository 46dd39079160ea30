package storetest

import (
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func pending(conn, id string) store.PendingRequest {
	return store.PendingRequest{
		ID: id, ConnectionID: conn, ReturnTo: "https://app.example/cb", State: "xyz", Test: true,
		Data: []byte(`{"relay":"r"}`), CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute),
	}
}

func testPendingRequests(t *testing.T, st store.Store) {
	r := pending("acme", "id-1")
	wantErr(t, "PutPendingRequest", st.PutPendingRequest(ctx(t), r), nil)
	wantErr(t, "PutPendingRequest duplicate", st.PutPendingRequest(ctx(t), r), store.ErrConflict)
	// The same request ID at another connection is another request.
	wantErr(t, "PutPendingRequest other connection", st.PutPendingRequest(ctx(t), pending("other", "id-1")), nil)
	wantErr(t, "PutPendingRequest to expire", st.PutPendingRequest(ctx(t), pending("acme", "id-2")), nil)
	plain := pending("acme", "id-3")
	plain.Test, plain.Data, plain.State = false, nil, ""
	wantErr(t, "PutPendingRequest plain", st.PutPendingRequest(ctx(t), plain), nil)

	got, err := st.GetPendingRequest(ctx(t), "acme", "id-1")
	wantErr(t, "GetPendingRequest", err, nil)
	equal(t, "GetPendingRequest", got, r, eqPending)
	got, err = st.GetPendingRequest(ctx(t), "acme", "id-3")
	wantErr(t, "GetPendingRequest plain", err, nil)
	equal(t, "GetPendingRequest plain", got, plain, eqPending)

	last := r.ExpiresAt.Add(-time.Microsecond)
	tests := []struct {
		name    string
		conn    string
		id      string
		now     time.Time
		wantErr error
	}{
		{"unknown", "acme", "nope", t0, store.ErrNotFound},
		{"another connection's", "third", "id-1", t0, store.ErrNotFound},
		{"at expiry", "acme", "id-2", r.ExpiresAt, store.ErrExpired},
		{"after expiry", "acme", "id-2", r.ExpiresAt.Add(time.Hour), store.ErrExpired},
		{"last moment", "acme", "id-1", last, nil},
		{"twice", "acme", "id-1", last, store.ErrConsumed},
		{"consumed and expired", "acme", "id-1", r.ExpiresAt.Add(time.Hour), store.ErrConsumed},
		{"same id other connection still fresh", "other", "id-1", t0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ConsumePendingRequest(ctx(t), tc.conn, tc.id, tc.now)
			wantErr(t, "ConsumePendingRequest", err, tc.wantErr)
			if tc.wantErr != nil {
				return
			}
			want := pending(tc.conn, tc.id)
			want.ConsumedAt = tc.now
			equal(t, "ConsumePendingRequest", got, want, eqPending)
		})
	}
	got, err = st.GetPendingRequest(ctx(t), "acme", "id-1")
	wantErr(t, "GetPendingRequest after consume", err, nil)
	if !got.ConsumedAt.Equal(last) {
		t.Fatalf("ConsumedAt = %v, want %v", got.ConsumedAt, last)
	}
	_, err = st.GetPendingRequest(ctx(t), "third", "id-1")
	wantErr(t, "GetPendingRequest other connection", err, store.ErrNotFound)
}

func testAssertions(t *testing.T, st store.Store) {
	exp := t0.Add(5 * time.Minute)
	tests := []struct {
		name, conn, id string
		wantErr        error
	}{
		{"first", "acme", "_a1", nil},
		{"replay", "acme", "_a1", store.ErrConsumed},
		{"replay again", "acme", "_a1", store.ErrConsumed},
		{"same id at another connection", "other", "_a1", nil},
		{"another id", "acme", "_a2", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "RecordAssertion", st.RecordAssertion(ctx(t), tc.conn, tc.id, exp), tc.wantErr)
		})
	}
}

func code(value string) store.Code {
	return store.Code{
		Hash: hash(value), SessionID: "s-" + value, ConnectionID: "acme", Data: []byte(`{"n":1}`),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
	}
}

func testCodes(t *testing.T, st store.Store) {
	for _, v := range []string{"c1", "c2"} {
		wantErr(t, "PutCode", st.PutCode(ctx(t), code(v)), nil)
	}
	wantErr(t, "PutCode duplicate", st.PutCode(ctx(t), code("c1")), store.ErrConflict)
	bare := store.Code{Hash: hash("bare"), CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	wantErr(t, "PutCode bare", st.PutCode(ctx(t), bare), nil)

	exp := t0.Add(time.Minute)
	tests := []struct {
		name    string
		value   string
		now     time.Time
		want    store.Code
		wantErr error
	}{
		{"unknown", "nope", t0, store.Code{}, store.ErrNotFound},
		{"expired", "c2", exp, store.Code{}, store.ErrExpired},
		{"redeem", "c1", t0, code("c1"), nil},
		{"redeem twice", "c1", t0, store.Code{}, store.ErrConsumed},
		{"redeem twice later", "c1", exp.Add(time.Second), store.Code{}, store.ErrConsumed},
		{"still expired", "c2", exp.Add(time.Second), store.Code{}, store.ErrExpired},
		{"bare", "bare", t0, bare, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ConsumeCode(ctx(t), hash(tc.value), tc.now)
			wantErr(t, "ConsumeCode", err, tc.wantErr)
			equal(t, "ConsumeCode", got, tc.want, eqCode)
		})
	}
}

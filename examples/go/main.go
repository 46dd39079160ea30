// Command example is a Go backend that signs users in through ssogate and
// protects a route with the client package.
//
//	SSOGATE_API_KEY=… go run ./examples/go
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"log"
	"net/http"
	"os"

	"github.com/ssogate/ssogate/client"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

func main() {
	ssogate := cmp.Or(os.Getenv("SSOGATE_URL"), "http://127.0.0.1:8080")
	app := cmp.Or(os.Getenv("APP_URL"), "http://127.0.0.1:4000")
	ctx := context.Background()
	api, err := client.Dial(ctx, cmp.Or(os.Getenv("SSOGATE_GRPC"), "127.0.0.1:9090"), os.Getenv("SSOGATE_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	defer api.Close()
	verifier, err := client.NewVerifier(client.VerifierConfig{
		Issuer:   cmp.Or(os.Getenv("SSOGATE_ISSUER"), ssogate),
		Audience: cmp.Or(os.Getenv("SSOGATE_AUDIENCE"), ssogate),
		JWKSURL:  ssogate + "/.well-known/jwks.json",
		Online:   api.Login, // revocation seen within a second
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		state := rand.Text()
		start, err := api.Login.StartLogin(r.Context(), &ssogatev1.StartLoginRequest{
			ConnectionId: cmp.Or(os.Getenv("SSOGATE_CONNECTION"), "dev"), ReturnTo: app + "/callback", State: state})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "state", Value: state, Path: "/callback", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, start.RedirectUrl, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		res, err := api.Login.ExchangeCode(r.Context(), &ssogatev1.ExchangeCodeRequest{Code: r.URL.Query().Get("code")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if c, err := r.Cookie("state"); err != nil || res.State == "" || c.Value != res.State {
			http.Error(w, "state mismatch: start again at /login", http.StatusBadRequest)
			return
		}
		// A real app keeps the token server-side or in a cookie; this one
		// shows it so that it can be sent as a bearer token.
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": res.TokenSet.AccessToken})
	})
	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := client.IdentityFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": id.Subject, "tenant": id.TenantID, "email": id.Email, "roles": id.Roles})
	})
	mux.Handle("GET /api/me", verifier.HTTPMiddleware(me))
	mux.Handle("GET /api/admin", verifier.HTTPMiddleware(client.RequireRole("admin")(me)))
	log.Printf("listening on %s", app)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+cmp.Or(os.Getenv("PORT"), "4000"), mux))
}

package server

import (
	"cmp"
	"encoding/json"
	"net/http"

	"github.com/ssogate/ssogate/gen/openapi"
)

// handleOpenAPI serves the generated OpenAPI 3 document with this build's
// version and this server's external URL as its server.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	var doc map[string]any
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		writeText(w, http.StatusInternalServerError, "OpenAPI document unreadable\n")
		return
	}
	if info, ok := doc["info"].(map[string]any); ok {
		info["version"] = cmp.Or(s.version, "dev")
	}
	doc["servers"] = []any{map[string]any{"url": s.cfg.ExternalURL, "description": "this ssogate"}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(doc)
}

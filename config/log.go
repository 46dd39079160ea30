package config

import "log/slog"

// LogValue renders the configuration for the start-up log line: redacted,
// durations as text.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	keys := make([]string, len(r.APIKeys))
	for i, k := range r.APIKeys {
		keys[i] = k.Name
	}
	return slog.GroupValue(
		slog.String("http_addr", r.HTTPAddr),
		slog.String("grpc_addr", r.GRPCAddr),
		slog.String("external_url", r.ExternalURL),
		slog.String("store", r.Store),
		slog.Bool("grpc_tls", r.GRPCTLSCertFile != ""),
		slog.Bool("grpc_mtls", r.GRPCClientCAFile != ""),
		slog.String("log_level", r.LogLevel),
		slog.String("shutdown_delay", r.ShutdownDelay.String()),
		slog.String("shutdown_timeout", r.ShutdownTimeout.String()),
		slog.String("audit_retention", r.AuditRetention.String()),
		slog.Bool("kek_set", c.KEK != "" || c.KEKFile != ""),
		slog.Group("token",
			slog.String("issuer", r.Token.Issuer),
			slog.Any("audience", r.Token.Audience),
			slog.String("algorithm", r.Token.Algorithm),
			slog.String("access_ttl", r.Token.AccessTTL.String()),
			slog.String("refresh_ttl", r.Token.RefreshTTL.String()),
			slog.String("session_max", r.Token.SessionMax.String()),
			slog.String("key_rotation", r.Token.KeyRotation.String()),
		),
		slog.Group("saml",
			slog.String("clock_skew", r.SAML.ClockSkew.String()),
			slog.Int("max_body_bytes", r.SAML.MaxBodyBytes),
			slog.Int("max_xml_bytes", r.SAML.MaxXMLBytes),
			slog.Int("max_xml_elements", r.SAML.MaxXMLElements),
			slog.Int("max_xml_attributes", r.SAML.MaxXMLAttributes),
			slog.Int("max_xml_namespace_declarations", r.SAML.MaxXMLNamespaceDecls),
		),
		slog.Any("api_keys", keys),
		slog.Int("connections", len(r.Connections)),
	)
}

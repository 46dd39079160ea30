package server

import (
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
)

// The services below answer UNIMPLEMENTED (from the generated Unimplemented
// servers) for every RPC whose issue has not landed yet: honest for now,
// never a fake result.

type loginService struct {
	ssogatev1.UnimplementedLoginServiceServer
}

type connectionService struct {
	ssogatev1.UnimplementedConnectionServiceServer
}

type keyService struct {
	ssogatev1.UnimplementedKeyServiceServer
}

type auditService struct {
	ssogatev1.UnimplementedAuditServiceServer
}

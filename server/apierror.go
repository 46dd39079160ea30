package server

import (
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// errorDomain is ErrorInfo.domain on every error the API returns.
const errorDomain = "ssogate.dev"

// Reasons the API puts in ErrorInfo.reason. The proto comments list which
// RPC returns which; callers branch on these, never on messages.
const (
	reasonFieldRequired         = "FIELD_REQUIRED"
	reasonFieldInvalid          = "FIELD_INVALID"
	reasonUnknownField          = "UNKNOWN_FIELD"
	reasonInvalidJSON           = "INVALID_JSON"
	reasonAPIKeyMissing         = "API_KEY_MISSING"
	reasonAPIKeyUnknown         = "API_KEY_UNKNOWN"
	reasonRequestTooLarge       = "REQUEST_TOO_LARGE"
	reasonScopeMissing          = "SCOPE_MISSING"
	reasonMethodNotOpen         = "METHOD_NOT_OPEN"
	reasonConnectionNotFound    = "CONNECTION_NOT_FOUND"
	reasonDomainNotFound        = "DOMAIN_NOT_FOUND"
	reasonConnectionNotActive   = "CONNECTION_NOT_ACTIVE"
	reasonConnectionInTesting   = "CONNECTION_IN_TESTING"
	reasonReturnToNotAllowed    = "RETURN_TO_NOT_ALLOWED"
	reasonReturnToRequired      = "RETURN_TO_REQUIRED"
	reasonCodeUnknown           = "CODE_UNKNOWN"
	reasonCodeExpired           = "CODE_EXPIRED"
	reasonCodeUsed              = "CODE_USED"
	reasonSessionRevoked        = "SESSION_REVOKED"
	reasonSessionExpired        = "SESSION_EXPIRED"
	reasonRefreshTokenInvalid   = "REFRESH_TOKEN_INVALID"
	reasonRefreshTokenExpired   = "REFRESH_TOKEN_EXPIRED"
	reasonRefreshTokenReused    = "REFRESH_TOKEN_REUSED"
	reasonRefreshTokenRevoked   = "REFRESH_TOKEN_REVOKED"
	reasonConnectionInvalid     = "CONNECTION_INVALID"
	reasonConnectionExists      = "CONNECTION_ALREADY_EXISTS"
	reasonMetadataSourceClash   = "METADATA_SOURCE_CONFLICT"
	reasonIdPMetadataInvalid    = "IDP_METADATA_INVALID"
	reasonIdPMetadataUnreadable = "IDP_METADATA_FETCH_FAILED"
)

// apiError is the one way handlers build an RPC error: a status with code
// and message, and an ErrorInfo with reason and the ids involved, given as
// key, value pairs.
func apiError(code codes.Code, reason, msg string, kv ...string) error {
	st, err := status.New(code, msg).WithDetails(errorInfo(reason, kv...))
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// badField is an INVALID_ARGUMENT naming the request field at fault, as
// an ErrorInfo and a BadRequest field violation.
func badField(reason, field, msg string, kv ...string) error {
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(
		errorInfo(reason, append([]string{"field", field}, kv...)...),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg, Reason: reason}}})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

func errorInfo(reason string, kv ...string) *errdetails.ErrorInfo {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[kv[i]] = kv[i+1]
	}
	return info
}

// withErrorInfo makes sure an error leaving the API carries an ErrorInfo:
// one a handler did not give a specific reason gets the status code's name
// (NOT_FOUND, INTERNAL, …) as its reason.
func withErrorInfo(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Unknown, err.Error())
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return err
		}
	}
	details := []protoadapt.MessageV1{errorInfo(codeName(st.Code()))}
	for _, d := range st.Details() {
		if m, ok := d.(protoadapt.MessageV1); ok {
			details = append(details, m)
		}
	}
	withInfo, derr := status.New(st.Code(), st.Message()).WithDetails(details...)
	if derr != nil {
		return err
	}
	return withInfo.Err()
}

// codeName is the canonical upper-snake name of a code: FAILED_PRECONDITION.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if r >= 'A' && r <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// errorReason returns the ErrorInfo reason of err, or "".
func errorReason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// invalidFields turns validation problems (fieldError values, joined) into
// one INVALID_ARGUMENT with a field violation each, the field paths
// under fieldPrefix.
func invalidFields(reason, fieldPrefix string, err error, kv ...string) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	br := &errdetails.BadRequest{}
	var walk func(error)
	walk = func(e error) {
		var fe *fieldError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(e, &fe) {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fieldPrefix + fe.field, Description: fe.problem})
		}
	}
	walk(err)
	details := []protoadapt.MessageV1{errorInfo(reason, kv...)}
	if len(br.FieldViolations) > 0 {
		details = append(details, br)
	}
	st, derr := status.New(codes.InvalidArgument, msg).WithDetails(details...)
	if derr != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// internalError is err as an INTERNAL status that keeps err in its chain:
// the caller sees the status (err's text), and errors.Is still finds the
// cause, store.ErrUnavailable above all, which the interceptors turn into
// UNAVAILABLE.
func internalError(err error) error {
	return &causedStatus{st: status.New(codes.Internal, err.Error()), err: err}
}

// causedStatus is a gRPC status with the error it came from.
type causedStatus struct {
	st  *status.Status
	err error
}

func (e *causedStatus) Error() string              { return e.st.Err().Error() }
func (e *causedStatus) GRPCStatus() *status.Status { return e.st }
func (e *causedStatus) Unwrap() error              { return e.err }

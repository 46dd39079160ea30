package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// restErrorBody is the REST error shape: google.rpc.Status (code, message,
// details with their @type) plus the code's name in status, as Google's
// JSON APIs answer.
type restErrorBody struct {
	Code    int32             `json:"code"`
	Status  string            `json:"status"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

var (
	unknownFieldPattern = regexp.MustCompile(`unknown field "([^"]+)"`)
	badParamPattern     = regexp.MustCompile(`^(?:type mismatch, parameter: |missing parameter )([a-z_.]+)`)
	badQueryPattern     = regexp.MustCompile(`^parsing field "([^"]+)"`)
)

// restError writes an RPC error as JSON with its ErrorInfo and field
// violations. Errors the gateway made itself while reading the request
// (the decoder's wording) are reworded, with a reason like every other.
// A message over gRPC's size bound (ResourceExhausted "larger than max") is
// 413, not the 429 that ResourceExhausted otherwise maps to.
func restError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	if st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max") {
		st = status.Convert(apiError(codes.ResourceExhausted, reasonRequestTooLarge, "message too large: "+st.Message()))
		httpStatus = http.StatusRequestEntityTooLarge
	}
	if errorReason(st.Err()) == "" {
		st = status.Convert(withErrorInfo(gatewayError(st)))
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for _, v := range md.HeaderMD.Get("x-request-id") {
			w.Header().Set(requestIDHeader, v)
		}
	}
	writeStatus(w, httpStatus, st)
}

// writeStatus answers in the REST error shape. The REST guard uses it for
// what it refuses before the gateway sees the request.
func writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	body := restErrorBody{Code: int32(st.Code()), Status: codeName(st.Code()), Message: st.Message(), Details: []json.RawMessage{}}
	for _, a := range st.Proto().GetDetails() {
		if raw, err := protojson.Marshal(a); err == nil {
			body.Details = append(body.Details, raw)
		}
	}
	buf, _ := json.Marshal(body)
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssogate"`)
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(buf)
}

// gatewayError rewords the statuses the gateway itself makes (request body
// or path not readable, route not found), which carry no ErrorInfo.
func gatewayError(st *status.Status) error {
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		if m := unknownFieldPattern.FindStringSubmatch(msg); m != nil {
			return badField(reasonUnknownField, m[1], fmt.Sprintf("request body has a field %q this method does not take", m[1]))
		}
		if m := badParamPattern.FindStringSubmatch(msg); m != nil {
			return badField(reasonFieldInvalid, m[1], fmt.Sprintf("path parameter %s is missing or not of its type", m[1]))
		}
		if m := badQueryPattern.FindStringSubmatch(msg); m != nil {
			return badField(reasonFieldInvalid, m[1], fmt.Sprintf("query parameter %s is not of its type", m[1]))
		}
		// Whatever else the gateway could not read is the body.
		return apiError(codes.InvalidArgument, reasonInvalidJSON,
			"request body is not JSON of this method's request message (an object whose fields are named as in the API, in lowerCamelCase or snake_case)")
	case codes.NotFound:
		if msg == http.StatusText(http.StatusNotFound) {
			return apiError(codes.NotFound, "ROUTE_NOT_FOUND", "no API method at this path; see the OpenAPI document for the routes")
		}
	case codes.Unimplemented:
		if msg == http.StatusText(http.StatusMethodNotAllowed) {
			return apiError(codes.Unimplemented, "METHOD_NOT_ALLOWED", "this path takes another HTTP method; see the OpenAPI document")
		}
	}
	return st.Err()
}

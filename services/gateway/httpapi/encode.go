package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// encode writes v as JSON with the given status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON request body of at most maxBytes into v, rejecting
// other content types, unknown fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs, ok := params["charset"]; err != nil || mt != "application/json" || ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json (UTF-8)")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, maxBytes)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "bad_request", "the body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error, maxBytes int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d bytes", maxBytes)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errorf(http.StatusRequestTimeout, "request_timeout", "the body took too long to arrive")
	}
	return errorf(http.StatusBadRequest, "bad_request", "malformed JSON: %v", err)
}

func queryInt(r *http.Request, key string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusBadRequest, "bad_request", "%s must be a number from %d to %d", key, lo, hi)
	}
	return n, nil
}

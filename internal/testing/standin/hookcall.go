package standin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
)

// resolveAuthorization reads the token of a hook's authorization.secretRef, once: Metacontroller
// (v4.17) too reads it when the CompositeController is created or changed, not on every call.
func (c *Controller) resolveAuthorization(h *hook) error {
	if h == nil || h.Webhook.Authorization == nil {
		return nil
	}
	a := h.Webhook.Authorization
	ref := a.SecretRef
	secret, err := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ref.Namespace).
		Get(context.Background(), ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the authorization Secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	encoded, _, _ := unstructured.NestedString(secret.Object, "data", ref.Key)
	token, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(token) == 0 {
		return fmt.Errorf("the authorization Secret %s/%s has no key %s", ref.Namespace, ref.Name, ref.Key)
	}
	scheme := a.Type
	if scheme == "" {
		scheme = "Bearer"
	}
	h.authHeader = scheme + " " + string(token)
	return nil
}

// retryLater is a hook's 429: call again after a while, change nothing meanwhile.
type retryLater struct{ after time.Duration }

func (r *retryLater) Error() string { return "hook asked to be called again after " + r.after.String() }

// call POSTs a hook request and decodes the answer strictly, as Metacontroller does for hooks v2.
// A 429 is a retryLater; any other status but 200 is an error: nothing changes, and the parent is
// synced again with backoff.
func (c *Controller) call(ctx context.Context, h *hook, req, resp any) error {
	timeout, _ := h.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	if h.authHeader != "" {
		hr.Header.Set("Authorization", h.authHeader)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		after, _ := strconv.Atoi(res.Header.Get("Retry-After"))
		return &retryLater{after: time.Duration(max(after, 1)) * time.Second}
	default:
		return fmt.Errorf("answered %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	strict, err := kjson.UnmarshalStrict(b, resp)
	if err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("decoding the answer strictly: %w", errors.Join(strict...))
	}
	return nil
}

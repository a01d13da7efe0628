package jobops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"

	"github.com/jobwire/jobwire/shared/jobs"
)

// cursorSealer makes the job list's cursors opaque: a cursor is the job id
// the next page starts after, encrypted and authenticated (AES-GCM) for
// the owner who asked, so it reveals nothing and works for nobody else.
// Its key is derived from the session secret: every gateway that shares
// SESSION_SECRET reads the others' cursors.
type cursorSealer struct{ aead cipher.AEAD }

func newCursorSealer(sessionKey []byte) cursorSealer {
	m := hmac.New(sha256.New, sessionKey)
	m.Write([]byte("jobwire list cursor v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return cursorSealer{aead}
}

// seal returns the cursor of job id for owner.
func (c cursorSealer) seal(owner, id string) string {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(id)+c.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, []byte(id), []byte(owner)))
}

// open returns the job id in cursor; false if it was not sealed for owner
// (tampered with, or made for someone else). No cursor is the start: "".
func (c cursorSealer) open(owner, cursor string) (string, bool) {
	if cursor == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < c.aead.NonceSize() {
		return "", false
	}
	id, err := c.aead.Open(nil, b[:c.aead.NonceSize()], b[c.aead.NonceSize():], []byte(owner))
	if err != nil || jobs.ValidateID(string(id)) != nil {
		return "", false
	}
	return string(id), true
}

package jobops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
)

// cursorSealer makes the job list's cursors opaque: a cursor is the list
// position the next page starts below, encrypted and authenticated (AES-GCM) for
// the owner who asked, so it reveals nothing and works for nobody else.
// Its key is derived from the session secret: every gateway that shares
// SESSION_SECRET reads the others' cursors.
type cursorSealer struct{ aead cipher.AEAD }

func newCursorSealer(sessionKey []byte) cursorSealer {
	m := hmac.New(sha256.New, sessionKey)
	m.Write([]byte("jobwire list cursor v2"))
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

// seal returns the cursor of list position pos for owner.
func (c cursorSealer) seal(owner string, pos uint64) string {
	plain := strconv.AppendUint(nil, pos, 10)
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, plain, []byte(owner)))
}

// open returns the list position in cursor; false if it was not sealed
// for owner (tampered with, or made for someone else). No cursor is the
// start: 0.
func (c cursorSealer) open(owner, cursor string) (uint64, bool) {
	if cursor == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < c.aead.NonceSize() {
		return 0, false
	}
	plain, err := c.aead.Open(nil, b[:c.aead.NonceSize()], b[c.aead.NonceSize():], []byte(owner))
	if err != nil {
		return 0, false
	}
	pos, err := strconv.ParseUint(string(plain), 10, 64)
	return pos, err == nil && pos > 0
}

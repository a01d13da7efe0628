// Command token prints an HS256 bearer token for the embed example: what
// your app's backend does for its signed-in user, with the secret the
// gateway has in JWT_HS256_SECRET.
//
//	JWT_HS256_SECRET=... go run ./examples/embed/token -sub alice
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func main() {
	sub := flag.String("sub", "alice", "the user: the owner of the jobs the token submits and sees")
	ttl := flag.Duration("ttl", time.Hour, "how long the token is valid")
	flag.Parse()
	if err := run(os.Getenv("JWT_HS256_SECRET"), *sub, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		os.Exit(1)
	}
}

func run(secret, sub string, ttl time.Duration) error {
	if secret == "" {
		return fmt.Errorf("set JWT_HS256_SECRET to the gateway's")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, nil)
	if err != nil {
		return err
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl))}).Serialize()
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

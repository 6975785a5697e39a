package smtpgw_test

import (
	"context"
	"log"
	"os"
	"os/signal"
	"time"

	"portcullis/internal/smtpgw"
)

// A listener for example.org whose Handler accepts everything; a real
// Handler runs the checks and the policy and delivers before answering.
func ExampleNew() {
	h := smtpgw.HandlerFunc(func(ctx context.Context, tx *smtpgw.Transaction) smtpgw.Reply {
		log.Printf("%s from %s: %d bytes for %v", tx.ID, tx.ClientIP, len(tx.Data), tx.RcptTo)
		return smtpgw.Reply{Code: 250, Enhanced: smtpgw.EnhancedCode{2, 0, 0}, Text: "Queued as " + tx.ID}
	})
	srv, err := smtpgw.New(smtpgw.Config{Listeners: []smtpgw.ListenerConfig{{
		Name:          "mx",
		Address:       "127.0.0.1:2525",
		Hostname:      "mx.example.org",
		AcceptDomains: []string{"example.org"},
	}}}, h)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}

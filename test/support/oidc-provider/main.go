// The OpenID provider of the desktop-auth test: zitadel/oidc's example provider (its login form,
// code flow, discovery, ID tokens and userinfo), started the way the test needs it. The example's
// own main listens on every interface with the issuer http://localhost:<port>/; this one listens
// on 127.0.0.1 only, with the issuer http://127.0.0.1:<port>/, so nothing of the test is reachable
// from outside the machine. Built by scripts/toolchain (tool oidc-server).
//
//	PORT          port on 127.0.0.1 (required)
//	USERS_FILE    JSON map of users (storage.User fields), as the example reads it
//	REDIRECT_URI  comma-separated redirect URIs of the "web" client (secret "secret")
package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	port := os.Getenv("PORT")
	usersFile := os.Getenv("USERS_FILE")
	if port == "" || usersFile == "" {
		fmt.Fprintln(os.Stderr, "oidc-server: PORT and USERS_FILE are required")
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	issuer := fmt.Sprintf("http://127.0.0.1:%s/", port)
	storage.RegisterClients(storage.WebClient("web", "secret", strings.Split(os.Getenv("REDIRECT_URI"), ",")...))
	users, err := storage.StoreFromFile(usersFile)
	if err != nil {
		logger.Error("cannot read USERS_FILE", "error", err)
		os.Exit(1)
	}
	router := exampleop.SetupServer(issuer, storage.NewStorage(users), logger, false)
	logger.Info("listening", "issuer", issuer)
	if err := http.ListenAndServe("127.0.0.1:"+port, router); err != nil {
		logger.Error("server stopped", "error", err)
		os.Exit(1)
	}
}

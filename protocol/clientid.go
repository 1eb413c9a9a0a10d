package protocol

// ClientID returns the MQTT client id of a program run as user: the
// embedded broker lets only user connect with an id that is its name or
// begins with its name and "-", so no other user can take the id over and
// disconnect the program. Anonymous programs (demo mode) get "tutti-...".
// A speaker's id is its name, which is its user name.
func ClientID(user, program, instance string) string {
	if user == "" {
		user = Root
	}
	return user + "-" + program + "-" + instance
}

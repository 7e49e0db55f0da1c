package plugin

import (
	"errors"
	"strings"

	"qonnect.io/qonnect/internal/apiv1"
	"qonnect.io/qonnect/internal/leadclient"
	"qonnect.io/qonnect/internal/spec"
)

// oneLine folds an error's message onto one line: a user sees one clear
// line on stderr (errors.Join and some servers put newlines in theirs).
func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' }), "; ")
	return s
}

// userError is an error whose message is what the user sees.
type userError struct {
	msg   string
	cause error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.cause }

// toUserError makes the one line printed for err. A spec problem shows as
// the file and field at fault, without the layers above it, because that
// line is what a user acts on; everything else keeps its context.
func toUserError(err error) error {
	if err == nil {
		return nil
	}
	var ue *userError
	if errors.As(err, &ue) {
		return err
	}
	var fe *spec.FieldError
	if errors.As(err, &fe) {
		return &userError{msg: oneLine(fe), cause: err}
	}
	msg := oneLine(err)
	var ae *apiv1.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case apiv1.CodeForbidden:
			if !strings.HasPrefix(msg, "forbidden") {
				msg = "forbidden: " + msg
			}
		case apiv1.CodeBadRequest:
			// The lead validates too; its field and file are in the message.
			if ae.File != "" && !strings.Contains(msg, ae.File) {
				msg = ae.File + ": " + msg
			}
		}
	}
	if errors.Is(err, leadclient.ErrNoLead) {
		msg = strings.Replace(msg, leadclient.ErrNoLead.Error()+": ", leadclient.ErrNoLead.Error()+" (", 1)
		if strings.Contains(msg, "(") {
			msg += ")"
		}
	}
	return &userError{msg: msg, cause: err}
}

package lancelottest

// The default table's questions and their answers (docs/protocol.md).
const (
	QName  = "What is your name?"
	QQuest = "What is your quest?"
	QColor = "What is your favorite color?"
	AName  = "My name is Sir Lancelot of Camelot."
	AQuest = "To seek the Holy Grail."
	AColor = "Blue."
)

// Exchanges returns the default table's three exchanges, question then
// answer, in the order the book's client asks them. It returns an array,
// a copy the caller may change.
func Exchanges() [3][2]string {
	return [3][2]string{{QName, AName}, {QQuest, AQuest}, {QColor, AColor}}
}

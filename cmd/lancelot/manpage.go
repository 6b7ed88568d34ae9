package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// manPage is one man page, built from the command line's own definition
// (gendocs.go) and written as roff by write.
type manPage struct {
	name     string // lancelot or lancelot-COMMAND
	summary  string // the NAME line's description
	synopsis string // "lancelot serve [OPTIONS] [INTERFACE]"
	// description is paragraphs separated by blank lines.
	description string
	commands    []*cli.Command // lancelot(1) lists the commands
	flags       []cli.Flag
	// sections are the sections after OPTIONS (SIGNALS, FILES, EXIT
	// STATUS, ENVIRONMENT), each a list of tagged paragraphs.
	sections []manSection
	seeAlso  []string // "lancelot(1)", ...
}

// manSection is a section of tagged paragraphs (.TP): tag, then text.
type manSection struct {
	title string
	intro string
	items [][2]string
}

// write writes the page in roff (man(7)); version and date go in the
// footer.
func (p manPage) write(w io.Writer, version string, date time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 %q %q \"User Commands\"\n", strings.ToUpper(p.name), date.UTC().Format("2006-01-02"), "lancelot "+version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", roffDash(p.name), roffText(p.summary))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n%s\n", synopsisRoff(p.synopsis))
	b.WriteString(".SH DESCRIPTION\n")
	writeParagraphs(&b, p.description)
	if len(p.commands) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range p.commands {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffDash(c.Name), roffText(c.Usage))
		}
	}
	b.WriteString(".SH OPTIONS\n")
	for _, f := range p.flags {
		writeFlag(&b, f)
	}
	b.WriteString(".TP\n\\fB\\-\\-help\\fR, \\fB\\-h\\fR\nshow help and exit\n")
	for _, s := range p.sections {
		fmt.Fprintf(&b, ".SH %s\n", s.title)
		if s.intro != "" {
			writeParagraphs(&b, s.intro)
		}
		for _, it := range s.items {
			fmt.Fprintf(&b, ".TP\n%s\n%s\n", roffText(it[0]), roffText(it[1]))
		}
	}
	see := make([]string, len(p.seeAlso))
	for i, s := range p.seeAlso {
		name, sect, ok := strings.Cut(s, "(")
		if ok {
			see[i] = fmt.Sprintf("\\fB%s\\fR(%s", roffDash(name), sect)
		} else {
			see[i] = roffText(s)
		}
	}
	fmt.Fprintf(&b, ".SH SEE ALSO\n%s\n", strings.Join(see, ",\n"))
	_, err := io.WriteString(w, b.String())
	return err
}

// writeParagraphs writes blank-line separated paragraphs, each after .PP.
func writeParagraphs(b *strings.Builder, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		for _, line := range strings.Split(para, "\n") {
			b.WriteString(roffText(line) + "\n")
		}
	}
}

// synopsisRoff sets the command words in bold and the rest (options,
// arguments) in italics: lancelot serve [OPTIONS] [INTERFACE].
func synopsisRoff(s string) string {
	var out []string
	for _, w := range strings.Fields(s) {
		if strings.ContainsAny(w, "[]|.") || strings.ToUpper(w) == w {
			out = append(out, "\\fI"+roffText(w)+"\\fR")
			continue
		}
		out = append(out, "\\fB"+roffDash(w)+"\\fR")
	}
	return strings.Join(out, " ")
}

// writeFlag writes one option: its names and placeholder, its usage, its
// type and its default.
func writeFlag(b *strings.Builder, f cli.Flag) {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return
	}
	placeholder, usage := unquoteUsage(df.GetUsage())
	kind := flagKind(f)
	if placeholder == "" && df.TakesValue() {
		placeholder = "VALUE"
	}
	var names []string
	for _, n := range f.Names() {
		dashes := "\\-\\-"
		if len(n) == 1 {
			dashes = "\\-"
		}
		name := "\\fB" + dashes + roffDash(n) + "\\fR"
		if df.TakesValue() {
			name += " \\fI" + placeholder + "\\fR"
		}
		names = append(names, name)
	}
	fmt.Fprintf(b, ".TP\n%s\n%s\n", strings.Join(names, ", "), roffText(usage))
	if !df.TakesValue() {
		return
	}
	def := strings.Trim(df.GetDefaultText(), `"`)
	if def == "" || def == "[]" {
		def = "none"
	}
	fmt.Fprintf(b, ".br\nType: %s. Default: %s.\n", roffText(kind), roffText(def))
}

// flagKind names a flag's value type for the OPTIONS section.
func flagKind(f cli.Flag) string {
	switch f.(type) {
	case *cli.IntFlag, *altsrc.IntFlag:
		return "integer"
	case *cli.DurationFlag, *altsrc.DurationFlag:
		return "duration (500ms, 30s, 5m, 1h30m)"
	case *cli.StringSliceFlag, *altsrc.StringSliceFlag:
		return "string, repeatable (or comma separated)"
	case *cli.BoolFlag, *altsrc.BoolFlag:
		return "switch"
	}
	return "string"
}

// unquoteUsage splits a usage text into its `PLACEHOLDER` and the text
// without the backquotes, as urfave/cli's help does.
func unquoteUsage(usage string) (string, string) {
	before, rest, ok := strings.Cut(usage, "`")
	if !ok {
		return "", usage
	}
	name, after, ok := strings.Cut(rest, "`")
	if !ok {
		return "", usage
	}
	return name, before + name + after
}

// roffText escapes text for roff: backslashes, and a leading . or ' that
// roff would read as a request.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "`", "")
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffDash is roffText for a name typed as is (a command, an option):
// its hyphens are minus signs, so that it can be copied and searched.
func roffDash(s string) string {
	return strings.ReplaceAll(roffText(s), "-", `\-`)
}

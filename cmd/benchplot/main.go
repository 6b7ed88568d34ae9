// Command benchplot turns the figures docs/bench/compare.sh collected
// (docs/bench-results.json) into the chart docs/benchmarks.png (grouped bars:
// one group per load, one bar per server) and the table of
// docs/benchmarks.md, which it rewrites between the lines
// "<!-- results:begin -->" and "<!-- results:end -->".
//
// usage: benchplot -in docs/bench-results.json -png docs/benchmarks.png
//
//	[-md docs/benchmarks.md] [-restart docs/bench-restart.json]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchplot: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchplot", flag.ContinueOnError)
	in := fs.String("in", "docs/bench-results.json", "compare.sh's result `file`")
	png := fs.String("png", "docs/benchmarks.png", "chart to write (.png or .svg)")
	md := fs.String("md", "", "markdown `file` whose results section to rewrite (none: print the table)")
	restart := fs.String("restart", "", "restart.sh's result `file` to add to the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := readResults(*in)
	if err != nil {
		return err
	}
	var rs *restartResults
	if *restart != "" {
		if rs, err = readRestart(*restart); err != nil {
			return err
		}
	}
	if err := writeChart(res, *png); err != nil {
		return err
	}
	table := markdownTable(res, rs)
	if *md == "" {
		_, err = fmt.Print(table)
		return err
	}
	return replaceSection(*md, table)
}

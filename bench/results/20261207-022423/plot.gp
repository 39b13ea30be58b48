# gnuplot plot.gp  (from 20261207-022423/)
set terminal pngcairo size 1500,560 font "DejaVu Sans,10"
set output 'plot.png'
set datafile commentschars "#"
set style fill solid 0.65 border -1
set grid ytics
set xrange [-0.6:2.6]
set yrange [0:*]
set xtics rotate by 30 right nomirror
set multiplot layout 1,3 title "nginx-engagement bench 20261207-022423: 2 cores (AMD EPYC), median of 1 round(s), bars = min-max"
set boxwidth 0.6
set title "View events: requests/s (higher is better)"
plot 'plot.dat' using 1:3:xtic(2) with boxes lc rgb "#4477aa" notitle, \
     '' using 1:4:(0):($5-$4) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
set boxwidth 0.35
set title "CPU per request, µs (lower is better)"
set key top left
plot 'plot.dat' using ($1-0.18):6:xtic(2) with boxes lc rgb "#228833" title "server", \
     '' using ($1-0.18):7:(0):($8-$7) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle, \
     '' using ($1+0.18):9 with boxes lc rgb "#ccbb44" title "server + Redis", \
     '' using ($1+0.18):10:(0):($11-$10) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
set boxwidth 0.6
set title "p99 latency, ms (lower is better)"
plot 'plot.dat' using 1:12:xtic(2) with boxes lc rgb "#ee6677" notitle, \
     '' using 1:13:(0):($14-$13) with vectors heads size screen 0.006,90 lc rgb "black" lw 1.5 notitle
unset multiplot

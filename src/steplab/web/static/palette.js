// Generated from steplab.viz.palette by `python -m steplab.web.assets`; do not edit.
// The same color and marker per optimizer as in every steplab figure.
"use strict";
window.STEPLAB_PALETTE = {
 "sgd": {
  "color": "#000000",
  "marker": "o",
  "label": "SGD"
 },
 "momentum": {
  "color": "#0072B2",
  "marker": "s",
  "label": "Momentum"
 },
 "nesterov": {
  "color": "#CC79A7",
  "marker": "D",
  "label": "Nesterov"
 },
 "adagrad": {
  "color": "#009E73",
  "marker": "^",
  "label": "AdaGrad"
 },
 "rmsprop": {
  "color": "#E69F00",
  "marker": "v",
  "label": "RMSProp"
 },
 "adadelta": {
  "color": "#56B4E9",
  "marker": "P",
  "label": "AdaDelta"
 },
 "adam": {
  "color": "#D55E00",
  "marker": "X",
  "label": "Adam"
 },
 "adamw": {
  "color": "#8c564b",
  "marker": "p",
  "label": "AdamW"
 },
 "adamax": {
  "color": "#7b4173",
  "marker": "h",
  "label": "Adamax"
 },
 "nadam": {
  "color": "#8c6d31",
  "marker": "<",
  "label": "Nadam"
 },
 "radam": {
  "color": "#7f0000",
  "marker": ">",
  "label": "RAdam"
 },
 "lion": {
  "color": "#393b79",
  "marker": "*",
  "label": "Lion"
 },
 "adopt": {
  "color": "#17becf",
  "marker": "d",
  "label": "ADOPT"
 },
 "ademamix": {
  "color": "#bcbd22",
  "marker": "H",
  "label": "AdEMAMix"
 },
 "schedule_free_sgd": {
  "color": "#6b6ecf",
  "marker": "8",
  "label": "Schedule-Free SGD"
 },
 "schedule_free_adamw": {
  "color": "#e377c2",
  "marker": "x",
  "label": "Schedule-Free AdamW"
 }
};

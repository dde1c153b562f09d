/*
 * Demo storefront: plain pages that render the generator's catalogue (GET /api/catalogue)
 * and report what the shopper does through the tracker (window.clickstream).
 * The cart and the last order live in localStorage. Prices are in USD.
 */
(function (window, document) {
  "use strict";

  var CURRENCY = "USD";
  var cs = window.clickstream;
  var params = new URLSearchParams(window.location.search);
  var catalogue = [];
  var byId = {};

  // ---- helpers
  function $(selector) {
    return document.querySelector(selector);
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    attrs = attrs || {};
    for (var k in attrs) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "onclick" || k === "onchange" || k === "onsubmit") node[k] = attrs[k];
      else node.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function money(value) {
    return "$" + Number(value).toFixed(2);
  }
  function round2(value) {
    return Math.round(value * 100) / 100;
  }
  function slug(text) {
    return String(text).replace(/[^a-zA-Z0-9]+/g, "-");
  }
  function topCategory(category) {
    return String(category || "other").split("/")[0];
  }
  function productFields(p) {
    return { id: p.id, name: p.name, category: p.category, brand: p.brand, price: p.price, currency: CURRENCY };
  }

  // ---- cart (localStorage)
  function loadCart() {
    try {
      var cart = JSON.parse(window.localStorage.getItem("shop_cart") || "null");
      if (cart && cart.cart_id && Array.isArray(cart.items)) return cart;
    } catch (e) {
      /* a broken cart is replaced */
    }
    return { cart_id: cs.uuid(), items: [] };
  }
  function saveCart(cart) {
    window.localStorage.setItem("shop_cart", JSON.stringify(cart));
    renderCartCount();
  }
  function cartValue(cart) {
    return round2(
      cart.items.reduce(function (sum, item) {
        var p = byId[item.product_id];
        return sum + (p ? p.price * item.quantity : 0);
      }, 0)
    );
  }
  function cartFields(cart) {
    return { cart_id: cart.cart_id, value: cartValue(cart), currency: CURRENCY };
  }
  function cartItem(cart, productId) {
    for (var i = 0; i < cart.items.length; i++) if (cart.items[i].product_id === productId) return cart.items[i];
    return null;
  }

  function addToCart(product, quantity) {
    var cart = loadCart();
    var item = cartItem(cart, product.id);
    if (item) item.quantity += quantity;
    else cart.items.push({ product_id: product.id, quantity: quantity });
    saveCart(cart);
    cs.track("add_to_cart", { product: productFields(product), quantity: quantity, cart: cartFields(cart) });
  }
  function removeFromCart(productId) {
    var cart = loadCart();
    var item = cartItem(cart, productId);
    if (!item) return;
    cart.items = cart.items.filter(function (i) { return i.product_id !== productId; });
    saveCart(cart);
    cs.track("remove_from_cart", { product: productFields(byId[productId]), quantity: item.quantity, cart: cartFields(cart) });
  }
  function changeQuantity(productId, quantity) {
    if (!(quantity > 0)) return removeFromCart(productId);
    var cart = loadCart();
    var item = cartItem(cart, productId);
    if (!item || item.quantity === quantity) return;
    item.quantity = quantity;
    saveCart(cart);
    cs.track("update_cart_quantity", { product: productFields(byId[productId]), quantity: quantity, cart: cartFields(cart) });
  }

  // ---- shared layout
  function renderCartCount() {
    var count = loadCart().items.reduce(function (n, i) { return n + i.quantity; }, 0);
    var node = $("[data-testid=cart-count]");
    if (node) node.textContent = String(count);
  }
  function renderHeader() {
    var header = $("#site-header");
    if (!header) return;
    var user = cs.userId();
    header.innerHTML = "";
    header.appendChild(el("a", { href: "/", id: "logo", "data-testid": "home-link", text: "Clickstream Shop" }));
    var form = el("form", { action: "/search.html", method: "get", id: "search-form", role: "search" }, [
      el("input", { type: "search", name: "q", id: "search-input", "data-testid": "search-input", placeholder: "Search products", value: params.get("q") || "" }),
      el("button", { type: "submit", "data-testid": "search-submit", text: "Search" }),
    ]);
    header.appendChild(form);
    var nav = el("nav", {}, [
      user
        ? el("span", { "data-testid": "signed-in-user", text: "Hi, " + user })
        : el("a", { href: "/signin.html", "data-testid": "signin-link", text: "Sign in" }),
      el("a", { href: "/cart.html", "data-testid": "cart-link" }, ["Cart (", el("span", { "data-testid": "cart-count", text: "0" }), ")"]),
    ]);
    header.appendChild(nav);
    renderCartCount();
  }
  // ---- consent banner: shown while the tracker waits for the visitor's choice (data-consent)
  function renderConsentBanner() {
    var old = $("#consent-banner");
    if (old) old.parentNode.removeChild(old);
    if (!cs.consentMode || cs.consentMode() === "none" || cs.consentState() || cs.mode() === "cookieless") return;
    function choose(value) {
      return function () {
        cs.consent(value);
        renderConsentBanner();
      };
    }
    var banner = el("div", { id: "consent-banner", role: "region", "aria-label": "Consent", "data-testid": "consent-banner" }, [
      el("span", { text: "We count visits to improve this shop. " }),
      el("button", { type: "button", "data-testid": "consent-accept", text: "Accept", onclick: choose("granted") }),
      el("button", { type: "button", "data-testid": "consent-decline", text: "Decline", onclick: choose("denied") }),
    ]);
    var header = $("#site-header");
    header.parentNode.insertBefore(banner, header.nextSibling);
  }
  function productCard(p) {
    return el("li", { class: "product-card", "data-product-id": p.id }, [
      el("a", { href: "/product.html?id=" + encodeURIComponent(p.id), "data-testid": "product-link-" + p.id, text: p.name }),
      el("span", { class: "brand", text: p.brand }),
      el("span", { class: "price", text: money(p.price) }),
    ]);
  }
  function productList(products, testid) {
    return el("ul", { class: "product-list", "data-testid": testid }, products.map(productCard));
  }
  function categories() {
    var seen = {};
    catalogue.forEach(function (p) { seen[topCategory(p.category)] = (seen[topCategory(p.category)] || 0) + 1; });
    return Object.keys(seen).sort();
  }
  function main() {
    return $("#app");
  }
  function setTitle(text) {
    document.title = text + " · Clickstream Shop";
  }

  // ---- pages
  var pages = {
    home: function () {
      setTitle("Home");
      cs.page();
      var app = main();
      app.appendChild(el("h1", { text: "Welcome" }));
      app.appendChild(
        el("ul", { class: "categories", "data-testid": "category-list" }, categories().map(function (c) {
          return el("li", {}, [el("a", { href: "/category.html?c=" + encodeURIComponent(c), "data-testid": "category-link-" + slug(c), text: c })]);
        }))
      );
      app.appendChild(el("h2", { text: "Popular products" }));
      app.appendChild(productList(catalogue.slice(0, 12), "featured-products"));
    },

    category: function () {
      var category = params.get("c") || "";
      var products = catalogue.filter(function (p) {
        return p.category === category || p.category.indexOf(category + "/") === 0;
      });
      setTitle(category || "Category");
      cs.page();
      cs.track("category_view", { properties: { category: category, results_count: products.length } });
      var app = main();
      app.appendChild(el("h1", { "data-testid": "category-title", text: category }));
      app.appendChild(products.length ? productList(products, "category-products") : el("p", { text: "No products in this category." }));
    },

    search: function () {
      var query = (params.get("q") || "").trim();
      var words = query.toLowerCase().split(/\s+/).filter(Boolean);
      var results = words.length
        ? catalogue.filter(function (p) {
            var text = (p.name + " " + p.brand + " " + p.category).toLowerCase();
            return words.every(function (w) { return text.indexOf(w) !== -1; });
          })
        : [];
      setTitle("Search: " + query);
      cs.page();
      cs.track("search", { search: { query: query, results_count: results.length } });
      var app = main();
      app.appendChild(el("h1", { text: "Results for “" + query + "”" }));
      app.appendChild(el("p", { "data-testid": "results-count", text: results.length + " products" }));
      app.appendChild(productList(results.slice(0, 60), "search-results"));
    },

    product: function () {
      var product = byId[params.get("id")];
      var app = main();
      if (!product) {
        setTitle("Not found");
        cs.page();
        app.appendChild(el("h1", { "data-testid": "not-found", text: "Product not found" }));
        return;
      }
      setTitle(product.name);
      cs.page();
      cs.track("product_view", { product: productFields(product) });
      var quantity = el("input", { type: "number", min: "1", max: "99", value: "1", id: "quantity", "data-testid": "quantity-input" });
      var message = el("p", { class: "message", "data-testid": "cart-message", "aria-live": "polite" });
      app.appendChild(el("p", { class: "crumbs" }, [el("a", { href: "/category.html?c=" + encodeURIComponent(topCategory(product.category)), "data-testid": "crumb-category", text: topCategory(product.category) })]));
      app.appendChild(el("h1", { "data-testid": "product-name", "data-product-id": product.id, text: product.name }));
      app.appendChild(el("p", { class: "brand", "data-testid": "product-brand", text: product.brand + " · " + product.category }));
      app.appendChild(el("p", { class: "price", "data-testid": "product-price", text: money(product.price) }));
      app.appendChild(
        el("div", { class: "buy" }, [
          quantity,
          el("button", {
            type: "button",
            id: "add-to-cart",
            "data-testid": "add-to-cart",
            text: "Add to cart",
            onclick: function () {
              var n = Math.max(1, Math.min(99, parseInt(quantity.value, 10) || 1));
              addToCart(product, n);
              message.textContent = "Added " + n + " × " + product.name + " to your cart.";
            },
          }),
        ])
      );
      app.appendChild(message);
    },

    cart: function () {
      setTitle("Cart");
      cs.page();
      renderCart();
    },

    checkout: function () {
      setTitle("Checkout");
      var cart = loadCart();
      cs.page();
      var app = main();
      app.appendChild(el("h1", { text: "Checkout" }));
      if (!cart.items.length) {
        app.appendChild(el("p", { "data-testid": "cart-empty", text: "Your cart is empty." }));
        return;
      }
      cs.track("checkout_start", { cart: cartFields(cart) });
      app.appendChild(el("p", { "data-testid": "checkout-total", text: "Total " + money(cartValue(cart)) }));
      var email = el("input", { type: "email", id: "email", "data-testid": "checkout-email", placeholder: "you@example.com", value: "" });
      var form = el("form", { id: "checkout-form" }, [el("label", { for: "email", text: "E-mail " }), email,
        el("button", { type: "submit", id: "place-order", "data-testid": "place-order", text: "Place order" })]);
      form.onsubmit = function (e) {
        e.preventDefault();
        placeOrder();
      };
      app.appendChild(form);
    },

    confirmation: function () {
      setTitle("Order confirmed");
      cs.page();
      var app = main();
      var order = null;
      try {
        order = JSON.parse(window.localStorage.getItem("shop_last_order") || "null");
      } catch (e) {
        order = null;
      }
      if (!order || order.order_id !== params.get("order")) {
        app.appendChild(el("h1", { "data-testid": "order-missing", text: "Order not found" }));
        return;
      }
      // purchase is sent once per order, even when the page is reloaded
      var tracked = JSON.parse(window.localStorage.getItem("shop_tracked_orders") || "[]");
      if (tracked.indexOf(order.order_id) === -1) {
        cs.track("purchase", { order: order });
        tracked.push(order.order_id);
        window.localStorage.setItem("shop_tracked_orders", JSON.stringify(tracked.slice(-50)));
      }
      app.appendChild(el("h1", { text: "Thank you!" }));
      app.appendChild(el("p", {}, ["Order ", el("strong", { "data-testid": "order-id", text: order.order_id }),
        " · total ", el("strong", { "data-testid": "order-total", text: money(order.revenue) })]));
      app.appendChild(el("ul", { "data-testid": "order-items" }, order.items.map(function (i) {
        return el("li", { "data-product-id": i.product_id, text: i.quantity + " × " + i.name + " (" + money(i.price) + ")" });
      })));
      app.appendChild(el("a", { href: "/", "data-testid": "continue-shopping", text: "Continue shopping" }));
    },

    signin: function () {
      setTitle("Sign in");
      cs.page();
      var app = main();
      var input = el("input", { type: "text", id: "user-id", "data-testid": "signin-user", placeholder: "user id or e-mail" });
      var form = el("form", { id: "signin-form" }, [el("label", { for: "user-id", text: "User " }), input,
        el("button", { type: "submit", "data-testid": "signin-submit", text: "Sign in" })]);
      form.onsubmit = function (e) {
        e.preventDefault();
        var user = input.value.trim();
        if (!user) return;
        cs.identify(user);
        cs.flush().then(function () {
          window.location.href = "/";
        });
      };
      app.appendChild(el("h1", { text: "Sign in (demo: any name works)" }));
      app.appendChild(form);
      if (cs.userId()) {
        app.appendChild(el("button", { type: "button", "data-testid": "signout", text: "Sign out " + cs.userId(),
          onclick: function () { cs.track("sign_out"); cs.reset(); renderHeader(); } }));
      }
    },
  };

  function renderCart() {
    var app = main();
    app.innerHTML = "";
    var cart = loadCart();
    app.appendChild(el("h1", { text: "Your cart" }));
    if (!cart.items.length) {
      app.appendChild(el("p", { "data-testid": "cart-empty", text: "Your cart is empty." }));
      return;
    }
    var rows = cart.items.map(function (item) {
      var p = byId[item.product_id] || { id: item.product_id, name: item.product_id, price: 0 };
      var qty = el("input", { type: "number", min: "0", max: "99", value: String(item.quantity), "data-testid": "cart-qty-" + p.id });
      qty.onchange = function () {
        changeQuantity(p.id, parseInt(qty.value, 10) || 0);
        renderCart();
      };
      return el("tr", { "data-testid": "cart-item-" + p.id, "data-product-id": p.id }, [
        el("td", {}, [el("a", { href: "/product.html?id=" + encodeURIComponent(p.id), text: p.name })]),
        el("td", { text: money(p.price) }),
        el("td", {}, [qty]),
        el("td", { text: money(p.price * item.quantity) }),
        el("td", {}, [el("button", { type: "button", "data-testid": "remove-" + p.id, text: "Remove",
          onclick: function () { removeFromCart(p.id); renderCart(); } })]),
      ]);
    });
    app.appendChild(el("table", { class: "cart", "data-testid": "cart-table" }, rows));
    app.appendChild(el("p", { "data-testid": "cart-total", text: "Total " + money(cartValue(cart)) }));
    app.appendChild(el("a", { href: "/checkout.html", class: "button", "data-testid": "checkout-button", text: "Checkout" }));
  }

  function placeOrder() {
    var cart = loadCart();
    if (!cart.items.length) return;
    var items = cart.items.map(function (item) {
      var p = byId[item.product_id];
      return { product_id: p.id, name: p.name, category: p.category, brand: p.brand, price: p.price, quantity: item.quantity };
    });
    var order = { order_id: "ord-" + cs.uuid(), revenue: cartValue(cart), currency: CURRENCY, items: items };
    window.localStorage.setItem("shop_last_order", JSON.stringify(order));
    window.localStorage.removeItem("shop_cart");
    window.location.href = "/confirmation.html?order=" + encodeURIComponent(order.order_id);
  }

  function start() {
    renderHeader();
    renderConsentBanner();
    var page = document.body.getAttribute("data-page") || "home";
    window
      .fetch("/api/catalogue")
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "catalogue unavailable");
          return body.products;
        });
      })
      .then(function (products) {
        catalogue = products;
        products.forEach(function (p) { byId[p.id] = p; });
        renderCartCount();
        pages[page]();
        document.body.setAttribute("data-ready", "true");
      })
      .catch(function (error) {
        main().appendChild(el("p", { class: "error", "data-testid": "shop-error", text: "The shop is unavailable: " + error.message }));
        document.body.setAttribute("data-ready", "error");
      });
  }

  start();
})(window, document);
